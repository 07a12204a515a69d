"""Joint CTC/attention training: the decoder's inputs, its loss, and what training keeps."""

import pytest
import torch

from seqrec.attention_decoder import (
    IGNORE,
    AttentionDecoder,
    DecoderConfig,
    WithAttentionDecoder,
    decoder_io,
    sinusoids,
)
from seqrec.config import TrainConfig
from seqrec.models.blstm import BiLSTMCTC, ModelConfig


def test_teacher_forcing_inputs_and_outputs_use_blank_as_start_and_end():
    targets = torch.tensor([[3, 4, 5], [7, 0, 0]])
    inputs, outputs, pad = decoder_io(targets, torch.tensor([3, 1]))
    assert inputs.tolist() == [[0, 3, 4, 5], [0, 7, 0, 0]]
    assert outputs.tolist() == [[3, 4, 5, 0], [7, 0, IGNORE, IGNORE]]
    assert pad.tolist() == [[False] * 4, [False, False, True, True]]


def _decoder(vocab=6, enc_dim=10):
    torch.manual_seed(0)
    cfg = DecoderConfig(enc_dim=enc_dim, vocab_size=vocab, dim=16, layers=1, heads=2, dropout=0.0)
    return AttentionDecoder(cfg).eval()


def test_padding_never_changes_an_items_loss():
    dec = _decoder()
    enc = torch.randn(1, 7, 10)
    tgt = torch.tensor([[1, 2, 3]])
    alone = dec(enc, torch.tensor([7]), tgt, torch.tensor([3]))
    # The same item beside a longer one: padded encoder frames and labels.
    enc2 = torch.cat([torch.cat([enc, torch.randn(1, 4, 10)], 1), torch.randn(1, 11, 10)])
    tgt2 = torch.tensor([[1, 2, 3, 0, 0], [4, 5, 1, 2, 3]])
    logits_pair = dec.logits(enc2, torch.tensor([7, 11]), *_io(tgt2, [3, 5]))
    logits_alone = dec.logits(enc, torch.tensor([7]), *_io(tgt, [3]))
    assert torch.allclose(logits_pair[0, :4], logits_alone[0], atol=1e-5)
    assert torch.isfinite(alone) and alone > 0


def _io(targets, lengths):
    inputs, _, pad = decoder_io(targets, torch.tensor(lengths))
    return inputs, pad


def test_scaled_label_embeddings_match_the_position_codes_in_scale():
    # Embeddings times sqrt(dim) at unit scale per component, as the sinusoids are:
    # much larger ones would hide the positions the cross-attention needs.
    dec = AttentionDecoder(DecoderConfig(enc_dim=4, vocab_size=50, dim=256))
    scaled = dec.embed.weight.detach() * 256**0.5
    assert 0.9 < float(scaled.std()) < 1.1
    codes = sinusoids(64, 256, torch.device("cpu"))
    assert abs(float(codes.pow(2).mean().sqrt()) - 0.5**0.5) < 1e-3


def test_a_label_cannot_see_the_labels_after_it():
    dec = _decoder()
    enc = torch.randn(1, 7, 10)
    a = dec.logits(enc, torch.tensor([7]), *_io(torch.tensor([[1, 2, 3]]), [3]))
    b = dec.logits(enc, torch.tensor([7]), *_io(torch.tensor([[1, 2, 5]]), [3]))
    assert torch.allclose(a[0, :3], b[0, :3], atol=1e-6)
    assert not torch.allclose(a[0, 3], b[0, 3])


def test_the_decoder_learns_a_mapping_it_can_only_get_from_the_encoder():
    # Each item's labels (4 of 5, in a random order) are written in its encoder
    # frames: reading them all back needs cross-attention to work.
    torch.manual_seed(1)
    cfg = DecoderConfig(enc_dim=6, vocab_size=6, dim=32, layers=1, heads=2, dropout=0.0)
    dec = AttentionDecoder(cfg)
    opt = torch.optim.Adam(dec.parameters(), lr=3e-3)
    tgt = torch.stack([torch.randperm(5)[:4] + 1 for _ in range(16)])
    enc = torch.nn.functional.one_hot(tgt, 6).float().repeat_interleave(2, dim=1)
    lengths, tl = torch.full((16,), 8), torch.full((16,), 4)
    for _ in range(150):
        loss = dec(enc, lengths, tgt, tl)
        opt.zero_grad()
        loss.backward()
        opt.step()
    dec.eval()
    logits = dec.logits(enc, lengths, *_io(tgt, [4] * 16))
    assert torch.equal(logits[:, :4].argmax(-1), tgt)


def test_the_wrapper_leaves_the_model_and_its_file_as_they_are():
    torch.manual_seed(0)
    cfg = ModelConfig(input_dim=8, vocab_size=5, hidden=6, layers=2, dropout=0.3)
    model = BiLSTMCTC(cfg)
    dcfg = DecoderConfig(enc_dim=12, vocab_size=5, dim=8, layers=1, heads=2)
    both = WithAttentionDecoder(model, AttentionDecoder(dcfg)).eval()
    feats, lengths = torch.randn(2, 11, 8), torch.tensor([11, 7])
    tgt, tl = torch.tensor([[1, 2, 3], [4, 0, 0]]), torch.tensor([3, 1])
    lp, ol, inter, loss = both(feats, lengths, tgt, tl, taps=(1,))
    ref_lp, ref_ol, ref_inter = model(feats, lengths, taps=(1,))
    assert torch.allclose(lp, ref_lp) and torch.equal(ol, ref_ol)
    assert torch.allclose(inter[0], ref_inter[0])
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert not any(k.startswith("decoder") for k in model.state_dict())
    again = WithAttentionDecoder.from_payload(BiLSTMCTC(cfg), both.payload())
    assert again.decoder.cfg == dcfg
    assert torch.equal(again.decoder.out.weight, both.decoder.out.weight)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"attention_weight": 1.0}, "attention_weight must be in"),
        ({"attention_layers": 0}, "attention_layers must be 1 or more"),
        ({"attention_dim": 30}, "attention_dim must be a positive multiple of 4"),
        ({"attention_weight": 0.3, "word_ctc_weight": 0.3}, "cannot be combined"),
    ],
)
def test_config_checks(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)
