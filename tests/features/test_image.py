"""Image frontend: odd sizes and modes, EXIF orientation, ink polarity, errors, round trip."""

from __future__ import annotations

import json
import random
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from seqrec.features.augment import ImageAugmentConfig
from seqrec.features.image import (
    ImageError,
    ImageFrontend,
    ImageFrontendConfig,
    image_features,
    image_size,
    load_image,
)


def _line_image(w: int = 60, h: int = 20, mode: str = "L") -> Image.Image:
    """White page with a black bar in the middle third of the columns."""
    a = np.full((h, w), 255, dtype=np.uint8)
    a[h // 4 : h - h // 4, w // 3 : 2 * w // 3] = 0
    return Image.fromarray(a).convert(mode)


def _save(im: Image.Image, path, **kw):
    im.save(path, **kw)
    return path


@pytest.mark.parametrize(
    "w,h,height,expected",
    [
        (1, 1, 64, (64, 64)),  # a square of one pixel scales to a square
        (1, 50, 64, (1, 64)),  # one pixel wide: never fewer than one frame
        (50, 1, 16, (800, 16)),  # one pixel tall
        (20, 1000, 64, (1, 64)),  # tall and narrow
        (30000, 64, 32, (15000, 32)),  # very wide
    ],
)
def test_odd_sizes(tmp_path, w, h, height, expected):
    path = _save(Image.new("L", (w, h), 255), tmp_path / "x.png")
    feats = ImageFrontend(ImageFrontendConfig(height=height))(path)
    assert tuple(feats.shape) == expected and feats.dtype == torch.float32


def test_columns_shape_keeps_aspect(tmp_path):
    path = _save(_line_image(90, 30), tmp_path / "l.png")
    fe = ImageFrontend(ImageFrontendConfig(height=20))
    assert tuple(fe(path).shape) == (60, 20) and fe.feature_dim == 20


def test_rows_mode_shape(tmp_path):
    path = _save(_line_image(14, 70), tmp_path / "r.png")
    fe = ImageFrontend(ImageFrontendConfig(mode="rows", width=28))
    feats = fe(path)
    assert tuple(feats.shape) == (140, 28) and fe.feature_dim == 28


def test_ink_is_high():
    gray = np.asarray(_line_image(60, 20), dtype=np.float32) / 255
    feats = image_features(gray, ImageFrontendConfig(height=20))
    assert feats[30].max() > 0.95  # a column through the bar
    assert feats[2].max() < 0.05  # paper
    kept = image_features(gray, ImageFrontendConfig(height=20, invert="no"))
    assert kept[2].min() > 0.95
    # White ink on black is already ink-high: "auto" leaves it alone.
    dark = image_features(1 - gray, ImageFrontendConfig(height=20))
    assert torch.allclose(dark, feats)


def test_rgba_transparent_background_is_white(tmp_path):
    im = Image.new("RGBA", (40, 20), (0, 0, 0, 0))  # transparent black
    ImageDraw.Draw(im).rectangle((10, 5, 20, 15), fill=(0, 0, 0, 255))
    gray = load_image(_save(im, tmp_path / "a.png"))
    assert gray[0, 0] == 1.0 and gray[10, 15] == 0.0


def test_palette_with_transparency(tmp_path):
    im = Image.new("P", (30, 10), 0)
    im.putpalette([0, 0, 0, 255, 255, 255, 200, 0, 0] + [0] * (256 * 3 - 9))
    ImageDraw.Draw(im).rectangle((5, 2, 10, 7), fill=2)
    path = _save(im, tmp_path / "p.png", transparency=0)  # colour 0 is see-through
    gray = load_image(path)
    assert gray.shape == (10, 30) and gray[0, 0] == 1.0 and 0.1 < gray[4, 7] < 0.5


def test_sixteen_bit_uses_its_real_range(tmp_path):
    a = np.full((10, 40), 4000, dtype=np.uint16)  # 12-bit data stored in 16 bits
    a[3:7, 10:30] = 100
    path = _save(Image.fromarray(a), tmp_path / "i16.png")
    assert Image.open(path).mode == "I;16"
    gray = load_image(path)
    assert gray.max() == pytest.approx(1.0) and gray.min() == pytest.approx(0.0)
    assert tuple(ImageFrontend(ImageFrontendConfig(height=10))(path).shape) == (40, 10)


def test_bilevel_and_rgb_and_jpeg(tmp_path):
    for mode, name in (("1", "b.png"), ("RGB", "c.png"), ("L", "d.jpg"), ("L", "e.tif")):
        gray = load_image(_save(_line_image(60, 20, mode), tmp_path / name))
        assert gray.shape == (20, 60) and gray.dtype == np.float32
        assert gray[0, 0] > 0.9 and gray[10, 30] < 0.1


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_exif_orientation_is_applied(tmp_path, suffix):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated by 90 degrees
    path = _save(_line_image(30, 10, "RGB"), tmp_path / f"o{suffix}", exif=exif)
    assert Image.open(path).size == (30, 10)
    assert load_image(path).shape == (30, 10)  # (H, W) as displayed
    assert image_size(path) == (10, 30)


def test_too_wide_raises_naming_the_file(tmp_path):
    path = _save(Image.new("L", (3000, 10), 255), tmp_path / "wide.png")
    fe = ImageFrontend(ImageFrontendConfig(height=64, max_width=1000))
    with pytest.raises(ImageError, match=r"wide\.png.*max_width"):
        fe(path)


def test_bad_files_raise_image_error_naming_the_file(tmp_path):
    good = _save(_line_image(), tmp_path / "good.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "text.png").write_text("not an image\n")
    (tmp_path / "empty.png").write_bytes(b"")
    for name in ("truncated.png", "text.png", "empty.png", "missing.png"):
        with pytest.raises(ImageError, match=name.replace(".", r"\.")):
            load_image(tmp_path / name)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(30000, 30000))
    with pytest.raises(ImageError, match=r"bomb\.png.*too large"):
        load_image(path)


def test_speed_stretches_time_axis(tmp_path):
    path = _save(_line_image(100, 20), tmp_path / "s.png")
    fe = ImageFrontend(ImageFrontendConfig(height=20))
    assert fe.raw(path, speed=0.5).shape[0] == 200
    assert fe.raw(path, speed=2.0).shape[0] == 50


def test_augmented_raw_is_seeded(tmp_path):
    path = _save(_line_image(100, 20), tmp_path / "s.png")
    fe = ImageFrontend(ImageFrontendConfig(height=20))
    aug = ImageAugmentConfig(affine_prob=1.0, noise_prob=1.0)
    a = fe.raw(path, augment=aug, rng=random.Random(3))
    b = fe.raw(path, augment=aug, rng=random.Random(3))
    assert torch.equal(a, b) and a.shape == fe.raw(path).shape
    assert not torch.equal(a, fe.raw(path))


def test_interface_and_round_trip():
    fe = ImageFrontend(ImageFrontendConfig(height=48, mode="rows", width=32, invert="yes"))
    assert fe.modality == "image" and ".png" in fe.suffixes
    assert not fe.needs_stats and fe.frame_seconds() is None
    fe.fit_stats(iter([torch.zeros(3, 32)]))  # a no-op
    x = torch.rand(5, 32)
    assert fe.normalize(x) is x
    d = json.loads(json.dumps(fe.to_dict()))  # plain data: storable anywhere
    assert d["modality"] == "image" and d["mean"] is None
    back = ImageFrontend.from_dict(d)
    assert back.cfg == fe.cfg and back.feature_dim == 32


def test_config_validation():
    with pytest.raises(ValueError, match="mode"):
        ImageFrontendConfig(mode="diagonal")
    with pytest.raises(ValueError, match="invert"):
        ImageFrontendConfig(invert="maybe")
