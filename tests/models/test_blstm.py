from dataclasses import replace

import editdistance
import pytest
import torch

from seqrec.models.blstm import BiLSTMCTC, ModelConfig, lengths_mask, reverse_padded


def test_reverse_padded_is_an_involution_and_keeps_padding():
    x = torch.arange(2 * 5 * 1, dtype=torch.float).reshape(2, 5, 1)
    lengths = torch.tensor([3, 5])
    r = reverse_padded(x, lengths)
    assert r[0, :, 0].tolist() == [2, 1, 0, 3, 4]
    assert r[1, :, 0].tolist() == [9, 8, 7, 6, 5]
    assert torch.equal(reverse_padded(r, lengths), x)


@pytest.mark.parametrize(
    "frontend,subsample,layer_norm,input_norm,conv_extra",
    [
        ("none", 1, False, False, {}),
        ("stack", 2, False, True, {}),
        ("conv", 4, True, True, {}),
        ("conv", 2, False, False, {}),
        ("conv", 4, True, True, {"conv_norm": True, "conv_depth": 2}),
        ("conv", 4, True, False, {"self_condition": (1,)}),
    ],
)
def test_batched_equals_per_item(frontend, subsample, layer_norm, input_norm, conv_extra):
    torch.manual_seed(0)
    cfg = ModelConfig(
        input_dim=12,
        vocab_size=7,
        hidden=16,
        layers=2,
        dropout=0.0,
        frontend=frontend,
        subsample=subsample,
        conv_channels=4,
        layer_norm=layer_norm,
        input_norm=input_norm,
        **conv_extra,
    )
    model = BiLSTMCTC(cfg)
    with torch.no_grad():  # a few training-mode passes give batch norms real running stats
        for _ in range(3):
            model(torch.randn(2, 20, 12) * 3 + 1, torch.tensor([20, 14]))
    model.eval()
    lengths = torch.tensor([23, 9, 16, 1])
    x = torch.randn(4, 23, 12)
    for b, n in enumerate(lengths):
        x[b, n:] = 1e3  # garbage in the padding must not leak anywhere
    lp, out_len = model(x, lengths)
    assert lp.shape[:2] == (4, out_len.max())
    for b, n in enumerate(lengths.tolist()):
        single, single_len = model(x[b : b + 1, :n], torch.tensor([n]))
        assert out_len[b] == single_len[0]
        torch.testing.assert_close(lp[b, : out_len[b]], single[0], atol=1e-5, rtol=1e-5)


def test_output_lengths_and_log_probs():
    cfg = ModelConfig(
        input_dim=8, vocab_size=5, hidden=8, layers=1, frontend="conv", subsample=4, conv_channels=2
    )
    model = BiLSTMCTC(cfg).eval()
    lp, out_len = model(torch.randn(2, 10, 8), torch.tensor([10, 5]))
    assert out_len.tolist() == [3, 2]
    assert torch.allclose(lp.exp().sum(-1), torch.ones(2, 3), atol=1e-5)


def test_conv_blocks_layout():
    cfg = ModelConfig(
        input_dim=32,
        vocab_size=5,
        frontend="conv",
        subsample=4,
        conv_channels=6,
        conv_blocks=3,
        conv_depth=2,
        conv_norm=True,
    )
    conv = BiLSTMCTC(cfg).conv
    assert len(conv.convs) == 6 and conv.time_strides == [2, 1, 2, 1, 1, 1]
    assert all(isinstance(n, torch.nn.BatchNorm2d) for n in conv.norms)
    assert all(c.bias is None for c in conv.convs)  # the batch norm carries the shift
    assert conv.output_dim == 6 * 4  # 32 -> 16 -> 8 -> 4 features
    plain = BiLSTMCTC(ModelConfig(input_dim=32, vocab_size=5, frontend="conv", subsample=2)).conv
    assert len(plain.convs) == 2 and all(isinstance(n, torch.nn.Identity) for n in plain.norms)


def test_conv_frontend_runs_channels_last_with_the_same_outputs():
    cfg = ModelConfig(
        input_dim=16, vocab_size=5, frontend="conv", subsample=4, conv_channels=4, conv_depth=2
    )
    torch.manual_seed(0)
    model = BiLSTMCTC(cfg).eval()
    twin = BiLSTMCTC(cfg).eval()
    twin.load_state_dict(model.state_dict())
    weights = [c.weight for c in twin.conv.convs[1:]]  # the first has one input channel
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    assert not any(w.is_contiguous() for w in weights)  # loading kept the layout
    x, lengths = torch.randn(3, 37, 16), torch.tensor([37, 20, 9])
    got, got_len = twin.conv(x, lengths)
    twin.conv.to(memory_format=torch.contiguous_format)
    h = x.unsqueeze(1)  # the same convs on a plain (B, C, T, F) layout
    for conv, norm, st in zip(
        twin.conv.convs, twin.conv.norms, twin.conv.time_strides, strict=True
    ):
        h = h * lengths_mask(lengths, h.shape[2])[:, None, :, None]
        h = torch.relu(norm(conv(h)))
        lengths = (lengths + st - 1) // st
    h = h * lengths_mask(lengths, h.shape[2])[:, None, :, None]
    want = h.permute(0, 2, 1, 3).reshape(3, h.shape[2], -1)
    assert torch.equal(got_len, lengths)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_config_validation():
    with pytest.raises(ValueError):
        ModelConfig(input_dim=8, vocab_size=5, subsample=3, frontend="stack")
    with pytest.raises(ValueError):
        ModelConfig(input_dim=8, vocab_size=5, subsample=2)
    with pytest.raises(ValueError):
        ModelConfig(input_dim=8, vocab_size=5, frontend="rnn")
    with pytest.raises(ValueError):
        ModelConfig(input_dim=8, vocab_size=5, frontend="conv", subsample=2, conv_depth=0)
    with pytest.raises(ValueError):
        ModelConfig(input_dim=8, vocab_size=5, recurrent_dropout=1.0)
    with pytest.raises(ValueError, match="self_condition: layer 3"):
        ModelConfig(input_dim=8, vocab_size=5, layers=3, self_condition=(3,))  # the top layer
    with pytest.raises(ValueError, match="self_condition: layer 0"):
        ModelConfig(input_dim=8, vocab_size=5, self_condition=(0,))
    listed = ModelConfig(input_dim=8, vocab_size=5, self_condition=[1, 2])  # as TOML gives it
    assert listed.self_condition == (1, 2)


def test_self_condition_feeds_the_posteriors_to_the_next_layer():
    torch.manual_seed(0)
    cfg = ModelConfig(input_dim=6, vocab_size=5, hidden=8, layers=3, dropout=0.0)
    plain = BiLSTMCTC(cfg).eval()
    cond = BiLSTMCTC(replace(cfg, self_condition=(2,))).eval()
    assert set(cond.state_dict()) - set(plain.state_dict()) == {
        "condition.2.weight",
        "condition.2.bias",
    }
    cond.load_state_dict({**cond.state_dict(), **plain.state_dict()})
    x, lengths = torch.randn(3, 9, 6), torch.tensor([9, 6, 2])
    ref, _, (ref_inter,) = plain(x, lengths, taps=(2,))
    out, _, (inter,) = cond(x, lengths, taps=(2,))
    # Layer 2's own CTC output is unchanged; what layer 3 receives is not.
    torch.testing.assert_close(inter, ref_inter)
    assert not torch.allclose(out, ref)
    # With the map zeroed, the model is the plain one again.
    with torch.no_grad():
        cond.condition["2"].weight.zero_()
        cond.condition["2"].bias.zero_()
    torch.testing.assert_close(cond(x, lengths)[0], ref)
    # Its output (and so the loss) depends on the map: training reaches it.
    cond.train()
    cond(x, lengths)[0][0, 0].sum().backward()
    assert cond.condition["2"].weight.grad.abs().sum() > 0


def test_blank_shift_lowers_the_final_blank_logit_only():
    torch.manual_seed(0)
    cfg = ModelConfig(input_dim=6, vocab_size=5, hidden=8, layers=2, dropout=0.0)
    plain = BiLSTMCTC(cfg).eval()
    shifted = BiLSTMCTC(replace(cfg, blank_shift=1.25)).eval()
    # The value lives in the config: same state dict, so older files still load.
    assert set(shifted.state_dict()) == set(plain.state_dict())
    shifted.load_state_dict(plain.state_dict())
    x, lengths = torch.randn(3, 9, 6), torch.tensor([9, 6, 2])
    ref, _, (ref_inter,) = plain(x, lengths, taps=(1,))
    out, _, (inter,) = shifted(x, lengths, taps=(1,))
    want = ref.clone()
    want[..., 0] -= 1.25
    torch.testing.assert_close(out, torch.log_softmax(want, dim=-1))
    torch.testing.assert_close(inter, ref_inter)  # intermediate CTC outputs are untouched
    assert not torch.allclose(out, ref)


def test_blank_shift_sweep_scores_what_a_shifted_model_decodes():
    from seqrec.decoders.greedy import blank_shift_errors, greedy_decode
    from seqrec.vocab import Vocabulary

    torch.manual_seed(0)
    vocab = Vocabulary(("<blank>", "a", "b", "c", "d"), "phone")
    cfg = ModelConfig(input_dim=6, vocab_size=5, hidden=8, layers=2, dropout=0.0)
    model = BiLSTMCTC(cfg).eval()
    with torch.no_grad():
        model.out.weight.mul_(8.0)  # peaky outputs, as after training
    x, lengths = torch.randn(6, 40, 6), torch.tensor([40, 33, 27, 20, 12, 5])

    def texts(m):
        with torch.no_grad():
            lp, ol = m(x, lengths)
        return [vocab.decode(h) for h in greedy_decode(lp, ol)[0]], lp, ol

    refs, _, _ = texts(model)  # what the model says unshifted is the reference
    with torch.no_grad():
        model.out.bias[0] += 1.5  # a model that emits blank 1.5 nats too readily
    _, lp, ol = texts(model)
    errors = blank_shift_errors([lp[i, :n] for i, n in enumerate(ol.tolist())], refs, vocab)
    assert errors[0.0] > 0 and errors[1.5] == 0.0
    for shift in (0.5, 1.5, 3.0):  # the sweep's figure is the shifted model's own
        shifted = BiLSTMCTC(replace(cfg, blank_shift=shift)).eval()
        shifted.load_state_dict(model.state_dict())
        hyps = texts(shifted)[0]
        err = sum(editdistance.eval(r.split(), h.split()) for r, h in zip(refs, hyps, strict=True))
        assert errors[shift] == pytest.approx(err / sum(len(r.split()) for r in refs))


def test_blank_shift_must_be_finite():
    with pytest.raises(ValueError, match="blank_shift"):
        ModelConfig(input_dim=6, vocab_size=5, blank_shift=float("nan"))


def test_recurrent_dropout_acts_in_training_only():
    torch.manual_seed(0)
    cfg = ModelConfig(input_dim=6, vocab_size=5, hidden=8, layers=2, dropout=0.0)
    plain = BiLSTMCTC(cfg)
    dropped = BiLSTMCTC(replace(cfg, recurrent_dropout=0.5))
    dropped.load_state_dict(plain.state_dict())
    x, lengths = torch.randn(3, 9, 6), torch.tensor([9, 6, 2])
    ref, _ = plain.eval()(x, lengths)
    out, _ = dropped.eval()(x, lengths)
    torch.testing.assert_close(out, ref)  # inference: the weights as they are

    lp, _ = dropped.train()(x, lengths)
    assert not torch.allclose(lp, ref)
    lp[0, 0].sum().backward()
    layer = dropped.lstms[0].fwd
    grad = layer.weight_hh_l0.grad
    # The gradient reaches the stored weights, and only through the kept ones.
    assert grad is not None and 0 < int((grad == 0).sum()) < grad.numel()
    assert all(p.grad is not None for p in layer.parameters())
    # The stored weights themselves are never overwritten by the dropped copy.
    torch.testing.assert_close(layer.weight_hh_l0, plain.lstms[0].fwd.weight_hh_l0)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    cfg = ModelConfig(
        input_dim=12,
        vocab_size=7,
        hidden=16,
        layers=2,
        dropout=0.0,
        frontend="conv",
        subsample=4,
        conv_channels=4,
    )
    model = BiLSTMCTC(cfg).eval()
    x, lengths = torch.randn(3, 40, 12), torch.tensor([40, 17, 5])
    cpu, cpu_len = model(x, lengths)
    gpu, gpu_len = model.cuda()(x.cuda(), lengths.cuda())
    assert torch.equal(cpu_len, gpu_len.cpu())
    for b, n in enumerate(cpu_len.tolist()):
        torch.testing.assert_close(gpu[b, :n].cpu(), cpu[b, :n], atol=1e-4, rtol=1e-4)


def test_locked_dropout_keeps_one_mask_over_time_and_is_off_in_eval():
    from seqrec.models.blstm import LockedDropout

    torch.manual_seed(0)
    drop = LockedDropout(0.5)
    x = torch.ones(3, 50, 40)
    y = drop(x)
    assert torch.equal(y, y[:, :1].expand_as(y))  # the same mask at every frame
    assert set(y.unique().tolist()) == {0.0, 2.0}  # dropped, or kept and scaled by 1/(1-p)
    assert 0.3 < (y[:, 0] == 0).float().mean() < 0.7
    assert not torch.equal(y[0, 0], y[1, 0])  # each sequence draws its own
    assert torch.equal(drop.eval()(x), x)
    cfg = ModelConfig(
        input_dim=8, vocab_size=5, hidden=4, layers=1, dropout=0.5, locked_dropout=True
    )
    assert isinstance(BiLSTMCTC(cfg).dropout, LockedDropout)


def test_fast_dropout_drops_p_keeps_the_mean_and_is_off_in_eval():
    from seqrec.models.blstm import FastDropout

    torch.manual_seed(0)
    drop = FastDropout(0.4).train()
    x = torch.ones(64, 100, 32, requires_grad=True)
    y = drop(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 102 / 256) < 0.01  # 0.4 rounds to 102/256
    assert abs(y.mean().item() - 1.0) < 0.02
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # gradient = the scaled mask
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)  # repeatable under a seed
    drop.eval()
    assert drop(x) is x
    model = BiLSTMCTC(ModelConfig(input_dim=8, vocab_size=5, hidden=4, layers=1, dropout=0.2))
    assert isinstance(model.dropout, FastDropout)


def test_model_files_with_an_empty_fold_still_load_and_a_fold_is_refused():
    # Model files written while word-position classes were supported hold ``fold``.
    d = {"input_dim": 4, "vocab_size": 3, "fold": []}
    assert ModelConfig.from_dict(d) == ModelConfig(input_dim=4, vocab_size=3)
    with pytest.raises(ValueError, match=r"old\.pt: the model was trained on word-position"):
        ModelConfig.from_dict({**d, "fold": [0, 1, 1, 2]}, "old.pt")
