"""Word CTC beside a phone (or character) model's own: a training-only output layer.

The layer reads the top BiLSTM layer's output and is trained with CTC on the
manifest's ``words``; the model learns which words it hears, and a phone model
with them the canonical phones of a word said with a non-native accent. The
model file never holds this layer, so recognition and export are unchanged.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

import torch
from torch import nn

from seqrec.data.manifest import Record
from seqrec.models.blstm import BiLSTMCTC
from seqrec.vocab import BLANK, Vocabulary

UNKNOWN_WORD = "<unk>"


def word_vocabulary(records: Sequence[Record], min_count: int) -> Vocabulary:
    """The words seen at least ``min_count`` times in ``records`` and an unknown word.

    Raises ``ValueError`` naming the first record without a word transcript.
    """
    counts: collections.Counter[str] = collections.Counter()
    for r in records:
        if not r.words or not r.words.split():
            raise ValueError(
                f"{r.path}: item {r.id} has no word transcript ('words' in the manifest), "
                "which train.word_ctc_weight needs for every training item"
            )
        counts.update(r.words.split())
    kept = sorted(w for w, n in counts.items() if n >= min_count and w not in (BLANK, UNKNOWN_WORD))
    return Vocabulary((BLANK, UNKNOWN_WORD, *kept), "word")


def encode_words(vocab: Vocabulary, texts: Sequence[str]) -> list[list[int]]:
    """Word ids of each of ``texts``; a word ``vocab`` lacks becomes the unknown word."""
    unknown = vocab.symbols.index(UNKNOWN_WORD)
    index = {s: i for i, s in enumerate(vocab.symbols)}
    return [[index.get(w, unknown) for w in text.split()] for text in texts]


class WithWordCTC(nn.Module):
    """``model`` plus a word output layer: what training calls when word CTC is on.

    ``forward`` returns the model's log-probs, their lengths, the tapped layers'
    log-probs (see :meth:`BiLSTMCTC.forward`) and the word log-probs ``(B, T', W)``.
    """

    def __init__(self, model: BiLSTMCTC, vocab: Vocabulary) -> None:
        super().__init__()
        self.model = model
        self.vocab = vocab
        self.head = nn.Linear(model.out.in_features, len(vocab))

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor, taps: Sequence[int] = ()):
        m = self.model
        x, lengths, inter = m.encode(feats, lengths, taps)
        log_probs = torch.log_softmax(m.out(m.dropout(x)), dim=-1)
        words = torch.log_softmax(self.head(m.dropout(x)), dim=-1)
        return log_probs, lengths, inter, words

    def payload(self) -> dict:
        """What ``last.pt`` keeps of the word layer, for :meth:`from_payload`."""
        return {"vocab": self.vocab.to_dict(), "state_dict": self.head.state_dict()}

    @classmethod
    def from_payload(cls, model: BiLSTMCTC, payload: dict) -> WithWordCTC:
        new = cls(model, Vocabulary.from_dict(payload["vocab"]))
        new.head.load_state_dict(payload["state_dict"])
        return new
