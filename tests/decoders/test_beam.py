import itertools
import math

import pytest
import torch

from seqrec.decoders.beam import TokenLM, ctc_beam_search
from seqrec.decoders.decode import decode_log_probs
from seqrec.decoders.greedy import greedy_decode
from seqrec.decoders.lm import NgramLM, train_kneser_ney
from seqrec.decoders.options import DecodeOptions
from seqrec.vocab import Vocabulary

VOCAB = Vocabulary(("<blank>", "a", "b"), "char")


def _random(b, t, v, seed, sharp=2.0):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(b, t, v, generator=g) * sharp, -1)


def _collapse(path):
    out, prev = [], 0
    for p in path:
        if p != 0 and p != prev:
            out.append(p)
        prev = p
    return tuple(out)


def _label_scores(lp):
    """log P(labels | x) for every label sequence, by enumerating all frame paths."""
    t, v = lp.shape
    acc: dict[tuple, float] = {}
    for path in itertools.product(range(v), repeat=t):
        s = float(sum(lp[i, k] for i, k in enumerate(path)))
        key = _collapse(path)
        acc[key] = float(torch.logaddexp(torch.tensor(acc.get(key, -math.inf)), torch.tensor(s)))
    return acc


def _tiny_lm(order=2):
    text = [["a", "b"], ["a", "b", "a"], ["b", "b"], ["a"]]
    return NgramLM(train_kneser_ney(text, order, vocab=["a", "b"]))


@pytest.mark.parametrize("seed", range(6))
def test_wide_beam_finds_most_probable_labelling(seed):
    lp = _random(2, 5, 3, seed)
    lengths = torch.tensor([5, 4])
    out = ctc_beam_search(lp, lengths, beam=64, nbest=64, blank_skip=None, token_min_logp=-1e9)
    for b in range(2):
        truth = _label_scores(lp[b, : lengths[b]])
        best = max(truth, key=truth.get)
        assert out[b][0].ids == best
        # Every hypothesis of the full beam carries its exact CTC log-probability.
        assert len(out[b]) == len(truth)
        for h in out[b]:
            assert h.score == pytest.approx(truth[h.ids], abs=1e-4)


@pytest.mark.parametrize("use_states", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_wide_beam_with_lm_maximises_fused_score(seed, use_states):
    lp = _random(1, 5, 3, seed)
    lm = _tiny_lm(3)
    fused = TokenLM(lm, VOCAB.symbols, weight=0.7, bonus=0.3, use_states=use_states)
    assert (fused.tables is not None) == use_states
    out = ctc_beam_search(
        lp,
        torch.tensor([5]),
        beam=64,
        nbest=64,
        lm=fused,
        blank_skip=None,
        token_min_logp=-1e9,
        beam_threshold=math.inf,
    )
    truth = _label_scores(lp[0])
    words = {1: "a", 2: "b"}
    fused_truth = {
        k: s + 0.7 * lm.sentence_logprob([words[i] for i in k]) + 0.3 * len(k)
        for k, s in truth.items()
    }
    assert out[0][0].ids == max(fused_truth, key=fused_truth.get)
    for h in out[0]:
        assert h.score == pytest.approx(fused_truth[h.ids], abs=1e-4)
        assert h.am_score == pytest.approx(truth[h.ids], abs=1e-4)


def test_nbest_sorted_distinct_with_posteriors():
    lp = _random(3, 30, 6, 1, sharp=1.0)
    out = ctc_beam_search(lp, torch.tensor([30, 20, 7]), beam=16, nbest=10)
    for hyps in out:
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len({h.ids for h in hyps}) == len(hyps) == 10
        assert 0 < sum(h.posterior for h in hyps) <= 1 + 1e-6


@pytest.mark.parametrize("use_lm", [None, "states", "hashes"])
def test_batched_equals_per_item(use_lm):
    lp = _random(4, 40, 5, 2, sharp=3.0)
    lengths = torch.tensor([40, 13, 28, 1])
    vocab = ("<blank>", "a", "b", "c", "d")
    lm = TokenLM(_tiny_lm(3), vocab, 0.5, 0.5, use_lm == "states") if use_lm else None
    batch = ctc_beam_search(lp, lengths, beam=8, nbest=3, lm=lm)
    for i in range(4):
        one = ctc_beam_search(
            lp[i : i + 1, : lengths[i]], lengths[i : i + 1], beam=8, nbest=3, lm=lm
        )
        assert [h.ids for h in one[0]] == [h.ids for h in batch[i]]
        for x, y in zip(one[0], batch[i], strict=True):
            assert x.score == pytest.approx(y.score, abs=1e-4)


@pytest.mark.parametrize("seed", range(5))
def test_beam_one_is_greedy(seed):
    lp = _random(3, 50, 6, seed, sharp=2.5)
    lengths = torch.tensor([50, 31, 9])
    greedy, scores = greedy_decode(lp, lengths)
    # Viterbi semiring: the one kept prefix follows the best path exactly.
    out = ctc_beam_search(lp, lengths, beam=1, semiring="max", blank_skip=None)
    assert [list(h[0].ids) for h in out] == greedy
    assert [h[0].score for h in out] == pytest.approx(scores.tolist(), abs=1e-4)
    # And through the public options: beam 1 without LM is greedy.
    hyps = decode_log_probs(
        lp, lengths, Vocabulary(("<blank>", *"abcde"), "char"), DecodeOptions(beam=1)
    )
    assert [list(h.ids) for h in hyps] == greedy


@pytest.mark.parametrize("skip", [0.999, 0.99])
def test_blank_skipping_keeps_the_result_on_peaky_outputs(skip):
    # Peaky CTC output: most frames are almost surely blank.
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 60, 5, generator=g) * 2
    logits[:, ::3, 0] += 12
    lp = torch.log_softmax(logits, -1)
    lengths = torch.tensor([60, 45])
    a = ctc_beam_search(lp, lengths, beam=8, nbest=4, blank_skip=None)
    b = ctc_beam_search(lp, lengths, beam=8, nbest=4, blank_skip=skip)
    assert [[h.ids for h in x] for x in a] == [[h.ids for h in x] for x in b]
    for x, y in zip(a, b, strict=True):
        assert x[0].score == pytest.approx(y[0].score, abs=1e-2)


def test_lm_changes_the_choice():
    # Acoustics slightly prefer "b a"; a strong LM that has only seen "a b" flips it.
    lp = torch.log(torch.tensor([[0.05, 0.4, 0.55], [0.05, 0.55, 0.4]]))[None]
    plain = ctc_beam_search(lp, torch.tensor([2]), beam=8)
    assert plain[0][0].ids == (2, 1)
    lm = NgramLM(train_kneser_ney([["a", "b"]] * 5, 2))
    fused = ctc_beam_search(lp, torch.tensor([2]), beam=8, lm=TokenLM(lm, VOCAB.symbols, 2.0))
    assert fused[0][0].ids == (1, 2)


def test_empty_and_zero_length_inputs():
    lp = _random(2, 4, 3, 0)
    out = ctc_beam_search(lp, torch.tensor([0, 4]), beam=4, nbest=2)
    assert out[0][0].ids == () and out[0][0].score == pytest.approx(0.0)
    assert ctc_beam_search(lp[:0], torch.tensor([], dtype=torch.long)) == []


def test_options_validate():
    with pytest.raises(ValueError, match="nbest"):
        DecodeOptions(beam=2, nbest=3)
    with pytest.raises(ValueError, match="beam"):
        DecodeOptions(beam=0)
    with pytest.raises(ValueError, match="semiring"):
        ctc_beam_search(_random(1, 2, 3, 0), torch.tensor([2]), semiring="log")


def test_word_list_keeps_only_listed_words(tmp_path):
    vocab = Vocabulary(("<blank>", " ", "a", "b"), "char")
    lp = _random(3, 24, 4, 5, sharp=1.5)
    lengths = torch.tensor([24, 18, 10])
    free = decode_log_probs(lp, lengths, vocab, DecodeOptions(beam=8))
    listed = tmp_path / "words.txt"
    listed.write_text("ab 1.0\nba\nb\n")
    hyps = decode_log_probs(lp, lengths, vocab, DecodeOptions(beam=16, lexicon=str(listed)))
    assert any(" " in h.text or h.text not in ("ab", "ba", "b", "") for h in free)
    for h in hyps:
        assert all(w in {"ab", "ba", "b"} for w in h.text.split())
        assert h.text == " ".join(h.text.split())  # no double, leading or trailing space
    with pytest.raises(ValueError, match="character models"):
        decode_log_probs(
            lp,
            lengths,
            Vocabulary(("<blank>", "a", "b", "c"), "phone"),
            DecodeOptions(beam=2, lexicon=str(listed)),
        )
