"""Handwriting augmentation: seeded, shape/dtype/range preserved, identity when switched off."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from seqrec.features.augment import ImageAugmentConfig, augment_image

ALL_ON = ImageAugmentConfig(
    affine_prob=1.0, elastic_prob=1.0, stroke_prob=1.0, noise_prob=1.0, contrast_prob=1.0
)


def _line(h: int = 32, w: int = 120, dtype=np.float32) -> np.ndarray:
    """White paper with a few dark strokes."""
    img = np.ones((h, w), dtype=dtype)
    img[8:24, 10:13] = 0.0
    img[15:17, 20:100] = 0.1
    img[6:26, 60:62] = 0.2
    return img


def test_same_seed_same_output():
    a = augment_image(_line(), ALL_ON, random.Random(7))
    b = augment_image(_line(), ALL_ON, random.Random(7))
    assert np.array_equal(a, b)


def test_different_seeds_differ():
    a = augment_image(_line(), ALL_ON, random.Random(1))
    b = augment_image(_line(), ALL_ON, random.Random(2))
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(32, 120), (1, 1), (1, 40), (40, 1), (8, 3000)])
def test_shape_dtype_and_range_kept(shape, dtype):
    img = np.ones(shape, dtype=dtype)
    img[shape[0] // 2, shape[1] // 2] = 0.0
    for seed in range(3):
        out = augment_image(img, ALL_ON, random.Random(seed))
        assert out.shape == img.shape and out.dtype == img.dtype
        assert out.min() >= 0.0 and out.max() <= 1.0


def test_all_probabilities_zero_is_identity():
    img = _line()
    out = augment_image(img, ImageAugmentConfig.off(), random.Random(0))
    assert np.array_equal(out, img) and out is not img


@pytest.mark.parametrize(
    "prob", ["affine_prob", "elastic_prob", "stroke_prob", "noise_prob", "contrast_prob"]
)
def test_each_augmentation_changes_the_image(prob):
    cfg = replace(ImageAugmentConfig.off(), **{prob: 1.0})
    img = _line()
    changed = [not np.array_equal(augment_image(img, cfg, random.Random(s)), img) for s in range(4)]
    assert any(changed)


def test_geometry_fills_with_paper():
    blank = np.ones((20, 80), dtype=np.float32)
    geo = replace(ImageAugmentConfig.off(), affine_prob=1.0, elastic_prob=1.0)
    out = augment_image(blank, geo, random.Random(0))
    assert np.allclose(out, 1.0)  # moving paper around only brings in paper


def test_thicker_strokes_hold_more_ink():
    cfg = replace(ImageAugmentConfig.off(), stroke_prob=1.0, thin_fraction=0.0)
    img = _line()
    out = augment_image(img, cfg, random.Random(0))
    assert (1 - out).sum() > (1 - img).sum()


def test_invalid_config():
    with pytest.raises(ValueError, match="noise_prob"):
        ImageAugmentConfig(noise_prob=1.5)
    with pytest.raises(ValueError, match="stroke_min"):
        ImageAugmentConfig(stroke_min=3, stroke_max=2)
    with pytest.raises(ValueError, match="2-D"):
        augment_image(np.ones((2, 3, 3)), ALL_ON, random.Random(0))
