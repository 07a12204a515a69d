"""Multi-process training: batch shares per rank, agreement between ranks, torchrun end to end."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from seqrec.data.loader import DistributedFrameBudgetSampler, FrameBudgetSampler
from seqrec.data.manifest import Record, write_manifest
from seqrec.distributed import DistEnv, Runtime, weights_digest

ROOT = Path(__file__).resolve().parents[1]


def _torchrun(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )


@pytest.mark.parametrize("n_items", [1, 7, 40])
def test_ranks_get_disjoint_equal_shares_of_the_same_batches(n_items):
    lengths = [10 + (7 * i) % 50 for i in range(n_items)]
    whole = FrameBudgetSampler(lengths, max_frames=120, seed=3)
    for epoch in (0, 1):
        whole.set_epoch(epoch)
        everything = whole.batches()
        shares = []
        for rank in range(3):
            s = DistributedFrameBudgetSampler(lengths, 120, rank=rank, world_size=3, seed=3)
            s.set_epoch(epoch)
            shares.append(s.batches())
            assert len(s) == len(shares[-1])
        assert len({len(s) for s in shares}) == 1  # same number of steps on every rank
        dealt = [b for step in zip(*shares, strict=True) for b in step]
        # Round-robin over the full list, the tail padded with its first batches.
        assert dealt[: len(everything)] == everything
        assert all(
            b in everything[: len(dealt) - len(everything)] for b in dealt[len(everything) :]
        )
    with pytest.raises(ValueError, match="rank 2"):
        DistributedFrameBudgetSampler(lengths, 120, rank=2, world_size=2)


def test_environment_is_read_like_torchrun_sets_it(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert DistEnv.from_environ() == DistEnv(0, 1, 0)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    env = DistEnv.from_environ()
    assert (env.rank, env.world_size, env.local_rank, env.enabled, env.is_main) == (
        3,
        4,
        1,
        True,
        False,
    )
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="RANK 4"):
        DistEnv.from_environ()


def test_a_lone_runtime_agrees_with_itself():
    rt = Runtime("cpu")
    assert rt.all_true(False) is False and rt.all_true(True) is True
    assert rt.all_sum(1.5, 2) == (1.5, 2)
    m = torch.nn.Linear(3, 2)
    assert rt.wrap(m) is m
    assert rt.check_replicas(m) == weights_digest(m)
    with torch.no_grad():
        m.bias[0] += 1e-6
    assert rt.check_replicas(m) != weights_digest(torch.nn.Linear(3, 2))


def test_a_step_with_a_non_finite_unclipped_gradient_changes_nothing():
    torch.manual_seed(0)
    rt = Runtime("cpu")
    model, extra = torch.nn.Linear(3, 2), torch.nn.Linear(2, 2)
    opt = torch.optim.SGD([*model.parameters(), *extra.parameters()], lr=0.1)
    x = torch.randn(4, 3)

    def step(poison: bool) -> bool:
        # The poison is an infinite gradient for ``extra``'s bias alone: the loss
        # and ``model``'s gradients stay finite.
        hook = extra.bias.register_hook(lambda g: torch.full_like(g, float("inf")))
        if not poison:
            hook.remove()
        try:
            loss = extra(model(x)).pow(2).mean()
            return rt.backward_step(
                loss, opt, model.parameters(), 1.0, unclipped=extra.parameters()
            )
        finally:
            hook.remove()

    before = [p.detach().clone() for p in [*model.parameters(), *extra.parameters()]]
    assert not step(poison=True)
    after = [*model.parameters(), *extra.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    opt.zero_grad()
    assert step(poison=False)


def test_diverged_replicas_are_caught(tmp_path):
    script = tmp_path / "drift.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            from pathlib import Path

            import torch
            from seqrec.distributed import Runtime

            rt = Runtime.from_environ("cpu")
            torch.manual_seed(rt.env.rank)  # different weights on each rank
            out = Path(sys.argv[1]) / f"rank{rt.env.rank}.txt"
            try:
                rt.check_replicas(torch.nn.Linear(4, 2))
                out.write_text("NOT CAUGHT")
            except RuntimeError as e:
                out.write_text(f"CAUGHT {e}")
            rt.close()
            """
        )
    )
    # Each rank reports in its own file: both ranks printing to one pipe interleave.
    done = _torchrun(str(script), str(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for rank in (0, 1):
        report = (tmp_path / f"rank{rank}.txt").read_text()
        assert report.startswith("CAUGHT model replicas differ"), report


@pytest.mark.parametrize("adversary", [False, True], ids=["plain", "speaker_adversary"])
def test_torchrun_two_cpu_processes_train_identical_replicas(tmp_path, tone, adversary):
    words = ["LOW", "HIGH", "LOW HIGH", "HIGH LOW", "LOW LOW", "HIGH HIGH"]
    recs = []
    for i, w in enumerate(words):
        path = tone(tmp_path / f"u{i}.wav", 0.3 + 0.1 * i, 8000, 250 + 150 * i, seed=i)
        recs.append(Record(f"u{i}", str(path), w, speaker=f"s{i % 3}"))
    # The speaker classifier sits outside DDP: its gradients are averaged by hand.
    extra = "speaker_adversary = 0.5\nspeaker_adversary_layer = 1" if adversary else ""
    write_manifest(tmp_path / "m.jsonl", recs)
    config = tmp_path / "c.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [data]
            train = "{tmp_path / "m.jsonl"}"
            dev = "{tmp_path / "m.jsonl"}"
            unit = "word"
            [features]
            sample_rate = 8000
            n_mels = 20
            [model]
            frontend = "conv"  # batch norm: running statistics differ between ranks
            subsample = 2
            conv_channels = 4
            conv_blocks = 1
            conv_norm = true
            hidden = 12
            layers = 1
            dropout = 0.1
            [train]
            out_dir = "{tmp_path / "model"}"
            epochs = 2
            max_frames = 150
            threads = 1
            lr = 1e-2
            """
        )
        + extra
    )
    done = _torchrun("-m", "seqrec.cli", "train", str(config))
    log = done.stderr
    assert done.returncode == 0, log[-3000:]
    assert "weights identical on all 2 ranks" in log  # rank 0 compared both digests
    # Rank 0 alone reports epochs and writes files.
    assert log.count("epoch 1 loss") == 1 and log.count("epoch 2 loss") == 1
    model = tmp_path / "model"
    assert (model / "best.pt").exists() and (model / "last.pt").exists()
    assert len((model / "metrics.jsonl").read_text().splitlines()) == 2
    last = torch.load(model / "last.pt", weights_only=True)
    assert last["epoch"] == 2
    assert ("speaker_adversary" in last) == adversary
    assert ("speaker classifier identical on all ranks" in log) == adversary
