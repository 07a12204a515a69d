"""Handwriting image augmentation: small affine, elastic distortion, stroke width, noise, contrast.

Everything works on un-inverted grayscale images ``(H, W)`` in ``[0, 1]`` with a
white background (1.0) and dark ink, before the frontend inverts them; pixels
moved in from outside the image are white. Pillow and numpy only.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields

import numpy as np
from PIL import Image

_PAPER = 1.0


@dataclass(frozen=True)
class ImageAugmentConfig:
    """Probability and strength of each augmentation; each is drawn independently per image.

    Affine: rotation within ``±rotate_deg`` degrees, horizontal shear within
    ``±shear`` (x shifts by ``shear`` pixels per pixel of height, i.e. slant),
    scale within ``±scale`` (fraction), all about the image centre. Elastic: a
    smooth random displacement of at most ``elastic_px`` pixels, smooth over
    ``elastic_cell`` pixels. Stroke width: grayscale dilation of the ink (a
    ``k x k`` minimum filter, ``k`` in ``stroke_min..stroke_max``) or, with
    probability ``thin_fraction``, erosion with a 2x2 maximum filter (a larger one
    would erase thin strokes). Noise: Gaussian with a standard deviation drawn
    from ``[0, noise_std]``. Contrast: ink darkness scaled by a factor in
    ``1 ± contrast`` with the paper fixed, then brightness shifted by up to
    ``±brightness``.
    """

    affine_prob: float = 0.5
    rotate_deg: float = 1.5
    shear: float = 0.3
    scale: float = 0.05
    elastic_prob: float = 0.3
    elastic_px: float = 2.0
    elastic_cell: int = 16
    stroke_prob: float = 0.3
    stroke_min: int = 2
    stroke_max: int = 3
    thin_fraction: float = 0.5
    noise_prob: float = 0.3
    noise_std: float = 0.05
    contrast_prob: float = 0.3
    contrast: float = 0.3
    brightness: float = 0.1

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name.endswith(("_prob", "_fraction")) and not 0.0 <= getattr(self, f.name) <= 1:
                raise ValueError(f"{f.name} must be in [0, 1], got {getattr(self, f.name)}")
        if not 1 <= self.stroke_min <= self.stroke_max:
            raise ValueError("need 1 <= stroke_min <= stroke_max")
        if self.elastic_cell < 1:
            raise ValueError("elastic_cell must be at least 1")

    @classmethod
    def off(cls) -> ImageAugmentConfig:
        """A config that changes nothing (every probability 0)."""
        return cls(
            affine_prob=0.0, elastic_prob=0.0, stroke_prob=0.0, noise_prob=0.0, contrast_prob=0.0
        )


def augment_image(gray: np.ndarray, cfg: ImageAugmentConfig, rng: random.Random) -> np.ndarray:
    """A randomly augmented copy of a white-background grayscale image ``(H, W)`` in ``[0, 1]``.

    Every random draw comes from ``rng``, so the same ``rng`` state gives the
    same output. The result has the input's shape and dtype, clipped to ``[0, 1]``.
    """
    gray = np.asarray(gray)
    if gray.ndim != 2 or gray.size == 0:
        raise ValueError(f"expected a non-empty 2-D image, got shape {gray.shape}")
    out = gray.astype(np.float32)
    nprng = np.random.default_rng(rng.getrandbits(64))
    use_affine = rng.random() < cfg.affine_prob
    use_elastic = rng.random() < cfg.elastic_prob
    if use_affine or use_elastic:
        out = _warp(out, cfg, rng, nprng, use_affine, use_elastic)
    if rng.random() < cfg.stroke_prob:
        out = _stroke_width(out, cfg, rng)
    if rng.random() < cfg.contrast_prob:
        c = rng.uniform(1 - cfg.contrast, 1 + cfg.contrast)
        out = (out - _PAPER) * c + _PAPER + rng.uniform(-cfg.brightness, cfg.brightness)
    if rng.random() < cfg.noise_prob:
        sigma = rng.uniform(0.0, cfg.noise_std)
        out = out + nprng.normal(0.0, sigma, out.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0).astype(gray.dtype, copy=False)


def _warp(
    img: np.ndarray,
    cfg: ImageAugmentConfig,
    rng: random.Random,
    nprng: np.random.Generator,
    affine: bool,
    elastic: bool,
) -> np.ndarray:
    """Resample ``img`` at affinely moved and elastically displaced source coordinates."""
    h, w = img.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    if affine:
        inv = np.linalg.inv(_affine_matrix(cfg, rng)).astype(np.float32)
        cy, cx = (h - 1) / 2, (w - 1) / 2
        dx, dy = xs - cx, ys - cy
        xs = inv[0, 0] * dx + inv[0, 1] * dy + cx
        ys = inv[1, 0] * dx + inv[1, 1] * dy + cy
    if elastic:
        xs = xs + _smooth_field(h, w, cfg, nprng)
        ys = ys + _smooth_field(h, w, cfg, nprng)
    return _sample_bilinear(img, ys, xs, _PAPER)


def _affine_matrix(cfg: ImageAugmentConfig, rng: random.Random) -> np.ndarray:
    """Forward 2x2 map (x, y) about the centre: rotation @ shear @ scale."""
    theta = math.radians(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
    shear = rng.uniform(-cfg.shear, cfg.shear)
    s = rng.uniform(1 - cfg.scale, 1 + cfg.scale)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    # x moves with -y (image y points down), so a positive shear slants strokes to the right.
    shr = np.array([[1.0, -shear], [0.0, 1.0]])
    return rot @ shr @ (s * np.eye(2))


def _smooth_field(
    h: int, w: int, cfg: ImageAugmentConfig, nprng: np.random.Generator
) -> np.ndarray:
    """A displacement field ``(h, w)`` within ``±elastic_px``, smooth over ``elastic_cell`` px.

    A coarse grid of random values upsampled bilinearly: smooth without scipy.
    """
    gh, gw = h // cfg.elastic_cell + 2, w // cfg.elastic_cell + 2
    coarse = nprng.uniform(-1.0, 1.0, (gh, gw)).astype(np.float32)
    fine = Image.fromarray(coarse).resize((w, h), Image.Resampling.BILINEAR)
    return np.asarray(fine, dtype=np.float32) * np.float32(cfg.elastic_px)


def _sample_bilinear(img: np.ndarray, ys: np.ndarray, xs: np.ndarray, fill: float) -> np.ndarray:
    """``img`` read at fractional ``(ys, xs)``; points outside the image read ``fill``."""
    h, w = img.shape
    # A one-pixel border of ``fill``; coordinates beyond it clamp onto it.
    padded = np.pad(img, 1, constant_values=fill)
    ys = np.clip(ys + 1, 0, h + 1)
    xs = np.clip(xs + 1, 0, w + 1)
    y0 = np.minimum(np.floor(ys).astype(np.intp), h)
    x0 = np.minimum(np.floor(xs).astype(np.intp), w)
    fy, fx = ys - y0, xs - x0
    top = padded[y0, x0] * (1 - fx) + padded[y0, x0 + 1] * fx
    bottom = padded[y0 + 1, x0] * (1 - fx) + padded[y0 + 1, x0 + 1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def _stroke_width(img: np.ndarray, cfg: ImageAugmentConfig, rng: random.Random) -> np.ndarray:
    """Thicker ink (minimum filter) or thinner ink (2x2 maximum filter)."""
    if rng.random() < cfg.thin_fraction:
        return _window_extreme(img, 2, np.maximum)
    return _window_extreme(img, rng.randint(cfg.stroke_min, cfg.stroke_max), np.minimum)


def _window_extreme(img: np.ndarray, k: int, op: np.ufunc) -> np.ndarray:
    """``op`` (minimum or maximum) over every ``k x k`` window; borders repeat the edge."""
    if k <= 1:
        return img
    h, w = img.shape
    before, after = (k - 1) // 2, k // 2
    padded = np.pad(img, ((before, after), (before, after)), mode="edge")
    out = padded[0:h, 0:w].copy()
    for dy in range(k):
        for dx in range(k):
            op(out, padded[dy : dy + h, dx : dx + w], out=out)
    return out
