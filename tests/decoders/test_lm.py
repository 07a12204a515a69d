import math
import random

import pytest
import torch

from seqrec.decoders.lm import (
    EOS,
    UNK,
    NgramLM,
    lm_words,
    read_arpa,
    train_kneser_ney,
    train_lm,
    write_arpa,
)

SENTENCES = [
    "the cat sat on the mat".split(),
    "the dog sat on the log".split(),
    "a cat and a dog".split(),
    "the cat ate".split(),
    "on the mat the cat sat".split(),
]


@pytest.fixture(scope="module", params=[1, 2, 3, 4])
def model(request):
    return train_kneser_ney(SENTENCES, request.param, vocab=["zebra"])


def _next_words(model):
    return [w for w in model.words if w != "<s>"]


def test_distribution_after_any_context_sums_to_one(model):
    contexts = [(), ("<s>",), ("<s>", "the"), ("the", "cat"), ("sat", "on", "the"), ("zebra",)]
    contexts += [("mat", "a"), ("dog", "dog", "dog")]
    for ctx in contexts:
        total = sum(10 ** model.log10_prob(ctx, w) for w in _next_words(model))
        assert total == pytest.approx(1.0, abs=1e-6), ctx


def test_unseen_vocabulary_word_gets_probability(model):
    assert (("zebra",) in model.ngrams[0]) and ((UNK,) in model.ngrams[0])
    assert model.log10_prob(("the",), "zebra") > -20


def test_seen_continuation_beats_unseen():
    m = train_kneser_ney(SENTENCES, 3)
    assert m.log10_prob(("on", "the"), "mat") > m.log10_prob(("on", "the"), "ate")


def test_arpa_round_trip(model, tmp_path):
    path = tmp_path / "lm.arpa"
    write_arpa(model, path)
    back = read_arpa(path)
    assert back.order == model.order
    for mine, theirs in zip(model.ngrams, back.ngrams, strict=True):
        assert mine.keys() == theirs.keys()
        for g, (lp, bo) in mine.items():
            assert theirs[g][0] == pytest.approx(lp, abs=1e-5)
            assert theirs[g][1] == pytest.approx(bo, abs=1e-5)


@pytest.mark.parametrize("dense_max", [1, 1 << 22])
def test_array_lm_matches_reference_lookup(model, dense_max):
    lm = NgramLM(model, dense_max=dense_max)
    rng = random.Random(0)
    words = _next_words(model) + ["never-seen"]
    for _ in range(30):
        sent = [rng.choice(words) for _ in range(rng.randint(0, 7))]
        ref = 0.0
        ctx = ["<s>"]
        for w in [*sent, EOS]:
            ref += model.log10_prob(ctx, w) * math.log(10)
            ctx.append(w)
        assert lm.sentence_logprob(sent) == pytest.approx(ref, abs=1e-4)


def test_array_lm_batch_scores_normalise():
    lm = NgramLM(train_kneser_ney(SENTENCES, 3))
    ctx = torch.tensor([[-1, lm.bos], [lm.bos, lm.index["the"]], [lm.index["on"], lm.index["the"]]])
    words = torch.tensor([i for i, w in enumerate(lm.words) if w != "<s>"])
    info = lm.context_info(ctx)
    lp = lm.score(info, words.expand(3, -1))
    assert torch.allclose(lp.exp().sum(1), torch.ones(3), atol=1e-5)


def test_bad_arpa_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\ta\n-x\tb\n\\end\\\n")
    with pytest.raises(ValueError, match=r"bad\.arpa:6"):
        read_arpa(bad)
    (tmp_path / "short.arpa").write_text("\\data\\\nngram 1=3\n\\1-grams:\n-1\t<s>\n\\end\\\n")
    with pytest.raises(ValueError, match="short.arpa: header says 3"):
        read_arpa(tmp_path / "short.arpa")
    with pytest.raises(FileNotFoundError, match="missing.arpa"):
        read_arpa(tmp_path / "missing.arpa")


def test_train_lm_from_manifest_units(tmp_path):
    man = tmp_path / "m.jsonl"
    man.write_text('{"id": "a", "path": "a.png", "text": "ab ba"}\n')
    model = train_lm(man, tmp_path / "c.arpa", order=2, unit="char", vocab=["z"])
    assert {("a", "b"), ("b", "|"), ("|", "b")} <= set(model.ngrams[1])
    assert ("z",) in model.ngrams[0]
    assert lm_words("H AH L OW", "phone") == ["H", "AH", "L", "OW"]
    assert (tmp_path / "c.arpa").read_text().startswith("\n\\data\\")


def test_scores_agree_with_kenlm_where_installed(tmp_path):
    decoder = pytest.importorskip("flashlight.lib.text.decoder.kenlm")
    dictionary = pytest.importorskip("flashlight.lib.text.dictionary")
    model = train_kneser_ney(SENTENCES, 3)
    path = tmp_path / "lm.arpa"
    write_arpa(model, path)
    words = [w for w in model.words if w not in ("<s>",)]
    d = dictionary.create_word_dict({w: [[w]] for w in words})
    kenlm = decoder.KenLM(str(path), d)
    ours = NgramLM(model)
    sent = "the cat sat on the log".split()
    state = kenlm.start(False)
    total = 0.0
    for w in sent:
        state, s = kenlm.score(state, d.get_index(w))
        total += s
    state, s = kenlm.finish(state)
    total += s
    assert total * math.log(10) == pytest.approx(ours.sentence_logprob(sent), abs=1e-3)


def test_state_tables_give_the_same_probabilities(model):
    lm = NgramLM(model)
    tables = lm.state_tables()
    assert tables is not None
    rng = random.Random(1)
    words = _next_words(model)
    for _ in range(50):
        sent = [rng.choice(words) for _ in range(rng.randint(0, 9))]
        state, total = tables.start, 0.0
        for w in [*lm.ids(sent), lm.eos]:
            total += float(tables.logp[state * tables.vocab_size + w])
            state = int(tables.next_state[state * tables.vocab_size + w])
        assert total == pytest.approx(lm.sentence_logprob(sent), abs=1e-4)


def test_state_tables_respect_the_size_cap(model):
    assert NgramLM(model).state_tables(max_entries=1) is None
