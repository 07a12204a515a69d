"""Decoding options and results shared by the CLI, evaluation and transcription."""

from __future__ import annotations

from dataclasses import dataclass, field

# ``DecodeOptions.lm`` value that selects the LM embedded in the model file.
EMBEDDED_LM = "model"


@dataclass(frozen=True)
class DecodeOptions:
    """How to turn log-probs into text.

    ``beam=1`` without LM or lexicon is greedy best-path decoding; anything
    else runs the CTC prefix beam search.

    Attributes:
        beam: prefixes kept per utterance per frame.
        lm: path of an ARPA n-gram LM, or ``"model"`` for the LM stored in the
            model file; ``None`` for no LM.
        lm_weight: LM weight (``None``: the model file's tuned value, else 0.5).
        word_bonus: insertion bonus per LM unit, i.e. per emitted token of a
            char/phone LM (``None``: the model file's tuned value, else 0).
        nbest: alternatives returned per utterance (the best first).
        timestamps: add token start/end times (forced alignment of the result).
        lexicon: word list file (one word per line; first field of each line)
            restricting char-model output to those words between spaces.
        token_topk: at most this many tokens extend the prefixes at a frame.
        token_min_logp: tokens below this frame log-probability are not tried.
        beam_threshold: extensions scoring this far below the frame's best are
            not tried.
        blank_skip: frames whose blank probability exceeds this are skipped.
    """

    beam: int = 1
    lm: str | None = None
    lm_weight: float | None = None
    word_bonus: float | None = None
    nbest: int = 1
    timestamps: bool = False
    lexicon: str | None = None
    token_topk: int = 16
    token_min_logp: float = -8.0
    beam_threshold: float = 25.0
    blank_skip: float | None = 0.99

    def __post_init__(self) -> None:
        if self.beam < 1:
            raise ValueError(f"beam must be at least 1, got {self.beam}")
        if self.nbest < 1:
            raise ValueError(f"nbest must be at least 1, got {self.nbest}")
        if self.nbest > self.beam:
            raise ValueError(f"nbest ({self.nbest}) cannot exceed the beam ({self.beam})")

    @property
    def greedy(self) -> bool:
        return self.beam == 1 and self.lm is None and self.lexicon is None


@dataclass(frozen=True)
class Alternative:
    """One n-best entry: text, total log score and posterior within the final beam."""

    text: str
    score: float
    posterior: float


@dataclass(frozen=True)
class Hypothesis:
    """The decoding of one input.

    Attributes:
        text: the best transcript.
        ids: its token ids.
        score: total natural-log score (``am_score + lm_score``).
        am_score: CTC log-probability of ``ids`` (best path for greedy).
        lm_score: weighted LM log-probability plus insertion bonuses.
        confidence: mean of the token confidences (1.0 for an empty result).
        token_confidences: per token, its highest frame posterior on the path.
        timestamps: per token ``(start, end)``, in seconds for audio, in input
            frames (pixel columns) for images; ``None`` unless asked for.
        nbest: the alternatives, best first (the first is this hypothesis).
    """

    text: str
    ids: tuple[int, ...]
    score: float
    am_score: float
    lm_score: float = 0.0
    confidence: float = 1.0
    token_confidences: tuple[float, ...] = ()
    timestamps: tuple[tuple[float, float], ...] | None = None
    nbest: tuple[Alternative, ...] = field(default_factory=tuple)

    def as_row(self) -> dict:
        """JSON-ready fields for an output row (scores rounded)."""
        row: dict = {
            "text": self.text,
            "score": round(self.score, 4),
            "confidence": round(self.confidence, 4),
            "token_confidences": [round(c, 4) for c in self.token_confidences],
        }
        if self.timestamps is not None:
            row["timestamps"] = [[round(a, 3), round(b, 3)] for a, b in self.timestamps]
        if len(self.nbest) > 1:
            row["nbest"] = [
                {"text": a.text, "score": round(a.score, 4), "posterior": round(a.posterior, 4)}
                for a in self.nbest
            ]
        return row
