"""Text injection: transcripts alone train the upper BiLSTM layers."""

import json
import math
from dataclasses import replace

import pytest
import torch

from seqrec.models.blstm import BiLSTMCTC, ModelConfig
from seqrec.text_injection import TextEncoder, TextInjectionConfig, WithTextInjection
from seqrec.training import train
from tests.test_training import _config, _manifest


def test_text_encoder_holds_each_label_and_masks_some():
    torch.manual_seed(0)
    cfg = TextInjectionConfig(layer=1, mask=0.5, min_frames=2, max_frames=4)
    enc = TextEncoder(6, 8, cfg)
    with torch.no_grad():
        enc.mask.fill_(3.0)  # far from every embedding
    targets = torch.tensor([[1, 2, 3, 4, 5], [2, 2, 0, 0, 0]])
    x, lengths = enc(targets, torch.tensor([5, 2]))
    assert x.shape == (2, int(lengths.max()), 8)
    assert 10 <= lengths[0] <= 20 and 4 <= lengths[1] <= 8
    # Frames before the norm: each label's embedding (or the mask) repeated, then zeros.
    raw = enc.norm.forward
    enc.norm.forward = lambda t: t  # look at the frames before the layer norm
    try:
        torch.manual_seed(1)
        frames, lens = enc(targets, torch.tensor([5, 2]))
    finally:
        enc.norm.forward = raw
    masked = (frames == 3.0).all(-1)
    runs = torch.unique_consecutive(frames[0, : lens[0]], dim=0)
    assert 1 <= runs.shape[0] <= 5 and masked[0, : lens[0]].any()
    assert (frames[1, lens[1] :] == 0).all()
    with pytest.raises(ValueError, match="min_frames"):
        TextInjectionConfig(min_frames=1)


def test_with_text_injection_runs_the_upper_layers_on_the_text():
    torch.manual_seed(0)
    model = BiLSTMCTC(ModelConfig(input_dim=5, vocab_size=6, hidden=4, layers=2, dropout=0.0))
    enc = TextEncoder(6, 8, TextInjectionConfig(layer=1, mask=0.0))
    both = WithTextInjection(model, enc)
    feats, lengths = torch.randn(2, 9, 5), torch.tensor([9, 6])
    targets, tlen = torch.tensor([[1, 2, 3], [4, 0, 0]]), torch.tensor([3, 1])
    lp, ol, inter, text_lp, text_len = both(feats, lengths, targets, tlen, taps=(1,))
    ref_lp, ref_ol, ref_inter = model(feats, lengths, taps=(1,))
    assert torch.equal(lp, ref_lp) and torch.equal(ol, ref_ol) and len(inter) == 1
    assert text_lp.shape == (2, int(text_len.max()), 6)
    torch.testing.assert_close(text_lp.exp().sum(-1), torch.ones(text_lp.shape[:2]))
    # The upper layer alone reads the text: the first layer gets no gradient from it.
    model.zero_grad()
    text_lp.sum().backward()
    first = model.lstms[0].fwd.weight_ih_l0.grad
    assert first is None or not first.any()
    assert model.lstms[1].fwd.weight_ih_l0.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="train.text_layer"):
        WithTextInjection(model, TextEncoder(6, 8, TextInjectionConfig(layer=2)))


def test_text_injection_trains_and_stays_out_of_the_model_file(tmp_path):
    m = _manifest(tmp_path, [(d, "jackson", 0) for d in range(3)])
    cfg = _config(tmp_path, m, epochs=2, text_weight=0.5, text_frames=[2, 3])
    cfg = replace(cfg, model={**cfg.model, "layers": 2})
    best = train(cfg)
    last = torch.load(tmp_path / "model" / "last.pt", weights_only=True)
    saved = last["text_encoder"]["embed.weight"].clone()
    assert saved.shape == (len(last["vocab"]["symbols"]), 2 * 96)
    assert not any("encoder" in k for k in torch.load(best, weights_only=True)["state_dict"])
    rows = [json.loads(r) for r in (tmp_path / "model" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(math.isfinite(r["train_loss"]) for r in rows)
    # Resuming carries the text encoder on; a resumed run must keep text injection on.
    train(replace(cfg, train=replace(cfg.train, epochs=3)))
    resumed = torch.load(tmp_path / "model" / "last.pt", weights_only=True)
    assert resumed["epoch"] == 3 and not torch.equal(resumed["text_encoder"]["embed.weight"], saved)
    with pytest.raises(ValueError, match="trained with text injection"):
        train(replace(cfg, train=replace(cfg.train, epochs=4, text_weight=0.0)))
