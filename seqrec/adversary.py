"""Speaker-adversarial training: a speaker classifier reads every frame of one
BiLSTM layer, and its gradient reaches that layer and the ones below reversed,
so they learn features that say less about who is speaking (speaker-invariant
training, Meng et al. 2018, after the domain-adversarial training of Ganin and
Lempitsky 2015). The classifier itself learns as usual. Training only: the
model file and inference are unchanged.

The reversed cross-entropy has no upper bound: layers below can win by making
the classifier confidently wrong, which on speechocean762 broke training at a
reversal of 0.46 on BiLSTM layer 2 and 0.16 on layer 1. With ``confuse`` the
layers below instead minimise the cross-entropy of the (frozen) classifier's
output against the uniform distribution over speakers (domain confusion,
Tzeng et al. 2015), which is lowest, ``ln K``, when the classifier cannot tell
the speakers apart, and rewards nothing beyond that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from seqrec.data.manifest import Record
from seqrec.models.blstm import lengths_mask

NO_SPEAKER = -100  # cross-entropy's ignore index: items without a speaker add nothing


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` unchanged forwards; backwards the gradient times ``-scale``."""
    return _Reverse.apply(x, scale)


def ramp(progress: float) -> float:
    """The reversal's strength over training, 0 at the start rising towards 1
    (``2 / (1 + exp(-10 p)) - 1``): the classifier first learns to tell the
    speakers apart before the layers below are pushed to hide them."""
    return 2.0 / (1.0 + math.exp(-10.0 * min(max(progress, 0.0), 1.0))) - 1.0


class SpeakerAdversary(nn.Module):
    """A frame-level speaker classifier (two linear layers) for one BiLSTM layer.

    ``labels[i]`` is the speaker class of dataset item ``i`` (``NO_SPEAKER``
    when it has none); ``scale`` is the current strength of the reversal.
    :meth:`capture` hooks layer ``layer`` (1-based, after its LayerNorm) of a
    model for one forward pass; :meth:`loss` then gives the classifier's
    cross-entropy on the captured frames, with the reversed gradient below it;
    with ``pool`` it classifies each item once, from the mean of its frames (a
    far easier task than one frame, so a stronger adversary). With ``confuse``
    the layers below get the bounded confusion loss, scaled by ``scale``,
    instead of the reversed gradient (see the module's text).
    Running totals of that loss and of the frames classified right are kept
    for the training log (:meth:`take_stats`).
    """

    def __init__(
        self,
        dim: int,
        labels: Sequence[int],
        num_speakers: int,
        layer: int,
        pool: bool = False,
        confuse: bool = False,
    ) -> None:
        super().__init__()
        if num_speakers < 2:
            raise ValueError(
                f"speaker-adversarial training needs at least 2 training speakers, "
                f"got {num_speakers}"
            )
        self.layer = layer
        self.pool = pool
        self.confuse = confuse
        self.net = nn.Sequential(nn.Linear(dim, 256), nn.ReLU(), nn.Linear(256, num_speakers))
        self.register_buffer("labels", torch.as_tensor(list(labels), dtype=torch.long))
        self.scale = 0.0
        self._captured: torch.Tensor | None = None
        self._stats = [0.0, 0, 0]  # loss x frames, classified right, classified

    @classmethod
    def for_records(
        cls,
        dim: int,
        records: Sequence[Record],
        layer: int,
        pool: bool = False,
        confuse: bool = False,
    ) -> SpeakerAdversary:
        """One class per distinct speaker of ``records`` (sorted by name)."""
        names = sorted({r.speaker for r in records if r.speaker})
        index = {s: k for k, s in enumerate(names)}
        labels = [index[r.speaker] if r.speaker else NO_SPEAKER for r in records]
        return cls(dim, labels, len(names), layer, pool, confuse)

    @classmethod
    def for_model(
        cls,
        model: nn.Module,
        records: Sequence[Record],
        layer: int,
        pool: bool = False,
        confuse: bool = False,
    ) -> SpeakerAdversary:
        """:meth:`for_records` for BiLSTM layer ``layer`` (1-based) of ``model``
        (a :class:`~seqrec.models.blstm.BiLSTMCTC`), checked to exist."""
        layers = len(model.norms)
        if not 1 <= layer <= layers:
            raise ValueError(
                f"train.speaker_adversary_layer {layer} is not one of 1..{layers} "
                f"(the BiLSTM layers)"
            )
        return cls.for_records(2 * model.cfg.hidden, records, layer, pool, confuse)

    def capture(self, model: nn.Module) -> torch.utils.hooks.RemovableHandle:
        """Keep layer ``layer``'s output of the next forward pass of ``model``."""

        def keep(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            self._captured = output

        return model.norms[self.layer - 1].register_forward_hook(keep)

    def loss(self, lengths: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the valid frames of the captured layer output
        ``(B, T, C)``, ``lengths`` frames each, items ``index`` of the dataset
        (with ``pool``: over the items, each classified from its mean frame)."""
        h, self._captured = self._captured, None
        if h is None:
            raise RuntimeError("no layer output captured: call capture() before the forward pass")
        lengths = lengths.to(h.device)
        valid = lengths_mask(lengths, h.shape[1])
        target = self.labels.to(h.device)[index.to(h.device)]
        if self.pool:
            h = (h * valid[:, :, None]).sum(1) / lengths.clamp(min=1)[:, None]
            flat = target
        else:
            target = target[:, None].expand(-1, h.shape[1])
            flat = torch.where(valid, target, torch.full_like(target, NO_SPEAKER)).reshape(-1)
            h = h.reshape(flat.numel(), -1)
        counted = flat != NO_SPEAKER
        n = int(counted.sum())
        if self.confuse:
            # The classifier learns from detached features; the layers below see
            # it frozen, through the confusion loss alone.
            logits = self.net(h.detach()).float()
            frozen = {k: v.detach() for k, v in self.net.named_parameters()}
            seen = torch.func.functional_call(self.net, frozen, (h,)).float()
        else:
            logits = self.net(reverse_gradient(h, self.scale)).float()
        if n == 0:
            return logits.sum() * 0.0 + (seen.sum() * 0.0 if self.confuse else 0.0)
        ce = nn.functional.cross_entropy(logits, flat, reduction="sum")
        with torch.no_grad():
            right = (logits.argmax(-1) == flat) & counted
            self._stats[0] += float(ce)
            self._stats[1] += int(right.sum())
            self._stats[2] += n
        if self.confuse:
            uniform = -torch.log_softmax(seen, -1).mean(-1)  # >= ln K, equal at uniform
            ce = ce + self.scale * (uniform * counted).sum()
        return ce / n

    def share_across_ranks(self, world_size: int) -> None:
        """Keep the classifier identical on every rank of a distributed run: it
        starts from rank 0's weights, and each gradient is averaged over the ranks
        as soon as it is accumulated (what DDP does for the model, which the
        classifier is not part of)."""
        import torch.distributed as dist

        with torch.no_grad():
            for p in self.parameters():
                dist.broadcast(p, src=0)

        def average(p: torch.Tensor) -> None:
            dist.all_reduce(p.grad)
            p.grad.div_(world_size)

        for p in self.parameters():
            p.register_post_accumulate_grad_hook(average)

    def take_stats(self) -> tuple[float, float]:
        """(mean loss, share classified right: frames, or items when pooled) since
        the last call; both 0 when nothing ran."""
        total, right, n = self._stats
        self._stats = [0.0, 0, 0]
        return (total / n, right / n) if n else (0.0, 0.0)
