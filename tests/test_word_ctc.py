"""Word CTC beside the model's own units: vocabulary, the training-only layer, training."""

import pytest
import torch

from seqrec.data.manifest import Record
from seqrec.models.blstm import BiLSTMCTC, ModelConfig
from seqrec.word_ctc import UNKNOWN_WORD, WithWordCTC, encode_words, word_vocabulary


def _recs(*words):
    return [Record(f"u{k}", f"/data/u{k}.wav", "A B", words=w) for k, w in enumerate(words)]


def test_word_vocabulary_keeps_frequent_words_and_maps_the_rest_to_unknown():
    vocab = word_vocabulary(_recs("THE CAT", "THE DOG", "A CAT"), min_count=2)
    assert vocab.symbols == ("<blank>", UNKNOWN_WORD, "CAT", "THE")
    assert encode_words(vocab, ["THE DOG CAT", "CAT"]) == [[3, 1, 2], [2]]
    assert len(word_vocabulary(_recs("THE CAT", "THE DOG"), min_count=1)) == 5


@pytest.mark.parametrize("words", [None, "", "  "])
def test_word_vocabulary_names_the_item_without_words(words):
    with pytest.raises(ValueError, match=r"/data/u1\.wav: item u1 has no word transcript"):
        word_vocabulary(_recs("THE CAT", words), min_count=1)


def test_the_word_layer_reads_the_top_layer_and_leaves_the_model_as_it_is():
    torch.manual_seed(0)
    cfg = ModelConfig(input_dim=8, vocab_size=5, hidden=6, layers=2, dropout=0.3)
    model = BiLSTMCTC(cfg)
    vocab = word_vocabulary(_recs("THE CAT", "A DOG"), min_count=1)
    both = WithWordCTC(model, vocab).eval()
    feats, lengths = torch.randn(2, 11, 8), torch.tensor([11, 7])
    lp, ol, inter, words = both(feats, lengths, taps=(1,))
    ref_lp, ref_ol, ref_inter = model(feats, lengths, taps=(1,))
    assert torch.allclose(lp, ref_lp) and torch.equal(ol, ref_ol)
    assert torch.allclose(inter[0], ref_inter[0])
    assert words.shape == (2, 11, len(vocab))
    assert torch.allclose(words.exp().sum(-1), torch.ones(2, 11))
    assert not any(k.startswith("head") for k in model.state_dict())
    again = WithWordCTC.from_payload(BiLSTMCTC(cfg), both.payload())
    assert again.vocab == vocab and torch.equal(again.head.weight, both.head.weight)
