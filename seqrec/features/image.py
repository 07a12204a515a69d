"""Image frontend: read (Pillow), grayscale, ink-is-high, height normalisation, pixel-column frames.

Every function returns float32 values in ``[0, 1]``. A text-line image becomes
time-major frames ``(T, F)``: pixel columns left to right with ``F`` the
normalised height (``mode="columns"``), or rows top to bottom with ``F`` the
normalised width (``mode="rows"``, for row-sequence tasks such as digits read
downwards). Ink is high (about 1), background low (about 0).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

from seqrec.features.augment import ImageAugmentConfig, augment_image
from seqrec.features.base import Frontend

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif")

# Larger images are refused before decoding: 200 megapixels of float32 is 800 MB,
# far beyond any line or page scan; such a file is a mistake or a decompression bomb.
MAX_PIXELS = 200_000_000

_EXIF_ORIENTATION = 0x0112
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # rotations by 90 degrees: width and height swap


class ImageError(ValueError):
    """An image file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class ImageFrontendConfig:
    """Feature settings; stored in every model file.

    ``mode="columns"``: the image is scaled to ``height`` pixels keeping its aspect
    ratio and each pixel column is a frame (``F = height``). ``mode="rows"``: the
    image is scaled to ``width`` pixels keeping its aspect ratio and each pixel row
    is a frame (``F = width``). ``invert`` makes ink high: ``auto`` inverts when
    the median pixel is bright (dark ink on light paper), ``yes`` always, ``no``
    never. ``max_width`` is the most frames (columns, or rows in rows mode) one
    image may give; a longer image raises :class:`ImageError` rather than being
    cropped (cropping would silently drop transcribed text).
    """

    height: int = 64
    mode: str = "columns"
    invert: str = "auto"
    max_width: int = 20000
    width: int = 28

    def __post_init__(self) -> None:
        if self.mode not in ("columns", "rows"):
            raise ValueError(f"unknown image mode {self.mode!r}; expected 'columns' or 'rows'")
        if self.invert not in ("auto", "yes", "no"):
            raise ValueError(f"invert must be 'auto', 'yes' or 'no', got {self.invert!r}")
        if min(self.height, self.width, self.max_width) < 1:
            raise ValueError("height, width and max_width must be at least 1")

    @property
    def feature_dim(self) -> int:
        return self.height if self.mode == "columns" else self.width


def _open(path: str | os.PathLike) -> Image.Image:
    """Open lazily (header only), refusing missing, unreadable and oversized files."""
    try:
        im = Image.open(path)
    except FileNotFoundError:
        raise ImageError(f"{path}: image file not found") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{path}: image too large ({_short(e)})") from None
    except Exception as e:  # Pillow raises several types; all mean "unusable"
        raise ImageError(f"{path}: cannot read image ({_short(e)})") from None
    w, h = im.size
    if w == 0 or h == 0:
        im.close()
        raise ImageError(f"{path}: image has zero size ({w}x{h})")
    if w * h > MAX_PIXELS:
        im.close()
        raise ImageError(f"{path}: image too large ({w}x{h} pixels, limit {MAX_PIXELS})")
    return im


def _short(e: Exception) -> str:
    msg = str(e).strip().splitlines()
    return msg[-1] if msg else type(e).__name__


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` in pixels as displayed (EXIF orientation applied), without decoding.

    Raises :class:`ImageError` naming the file when it cannot be opened.
    """
    with _open(path) as im:
        w, h = im.size
        try:
            orientation = _orientation(im)
        except Exception as e:  # a damaged EXIF block
            raise ImageError(f"{path}: cannot read EXIF data ({_short(e)})") from None
    return (h, w) if orientation in _TRANSPOSING_ORIENTATIONS else (w, h)


def _orientation(im: Image.Image) -> int:
    if im.format == "PNG":
        # PngImageFile.getexif() decodes the whole image to look for a trailing
        # eXIf chunk; one before the pixel data is already in ``info``.
        raw = im.info.get("exif")
        if not raw:
            return 1
        exif = Image.Exif()
        exif.load(raw)
    else:
        exif = im.getexif()
    return int(exif.get(_EXIF_ORIENTATION, 1) or 1)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as float32 grayscale ``(H, W)`` in ``[0, 1]``, 1 = white.

    Any Pillow mode is accepted: bilevel, 8-bit gray, palette, RGB, CMYK;
    transparent pixels (alpha, palette transparency) are composited over white;
    16-bit and 32-bit integer images are stretched from their own minimum to
    maximum (12-bit scans stored in 16 bits would otherwise look black); float
    images outside ``[0, 1]`` likewise. EXIF orientation is applied, and only the
    first frame of a multi-frame file is read. Raises :class:`ImageError` naming
    the file for anything missing, unreadable, truncated, empty or too large.
    """
    with _open(path) as im:
        try:
            im.load()
            im = ImageOps.exif_transpose(im)
            gray = grayscale_array(im)
        except ImageError as e:
            raise ImageError(f"{path}: {e}") from None
        except Exception as e:  # truncated or corrupt data shows up on decoding
            raise ImageError(f"{path}: cannot decode image ({_short(e)})") from None
    return gray


def grayscale_array(im: Image.Image) -> np.ndarray:
    """A decoded Pillow image of any mode as float32 grayscale ``(H, W)`` in ``[0, 1]``.

    Transparency is composited over white; 16/32-bit and float images are
    stretched by their real range (see :func:`load_image`). No EXIF handling.
    """
    if im.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        return _stretch(np.asarray(im, dtype=np.float64), im.mode == "F")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("LA", "La", "PA", "RGBa"):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)
    if im.mode != "L":
        im = im.convert("RGB").convert("L") if im.mode not in ("1", "RGB") else im.convert("L")
    return np.asarray(im, dtype=np.float32) / np.float32(255.0)


def _stretch(a: np.ndarray, keep_unit_range: bool) -> np.ndarray:
    """Map integer or float pixel values onto ``[0, 1]`` by their real range."""
    if not np.isfinite(a).all():
        raise ImageError("image holds NaN or infinite pixels")
    lo, hi = float(a.min()), float(a.max())
    if keep_unit_range and lo >= 0.0 and hi <= 1.0:
        return a.astype(np.float32)
    if hi == lo:  # a constant image: call it paper when non-zero
        return np.full(a.shape, 1.0 if hi > 0 else 0.0, dtype=np.float32)
    return ((a - lo) / (hi - lo)).astype(np.float32)


def to_ink(gray: np.ndarray, invert: str = "auto") -> np.ndarray:
    """Grayscale ``(H, W)`` in ``[0, 1]`` -> ink-is-high ``(H, W)`` (ink about 1, paper about 0).

    ``auto`` inverts when the median pixel is bright, i.e. the background is light.
    """
    if invert == "yes" or (invert == "auto" and float(np.median(gray)) > 0.5):
        return (1.0 - gray).astype(np.float32)
    if invert not in ("auto", "yes", "no"):
        raise ValueError(f"invert must be 'auto', 'yes' or 'no', got {invert!r}")
    return gray.astype(np.float32, copy=False)


def _resize(a: np.ndarray, width: int, height: int) -> np.ndarray:
    # Pillow's bilinear resampling widens its kernel when shrinking, so it also
    # anti-aliases; float ("F") images keep full precision.
    out = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32)).resize(
        (width, height), Image.Resampling.BILINEAR
    )
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def frames_from_ink(
    ink: np.ndarray, cfg: ImageFrontendConfig, stretch: float = 1.0
) -> torch.Tensor:
    """Ink-is-high image ``(H, W)`` -> frames ``(T, F)``, scaled as ``cfg`` says.

    ``stretch`` scales the time axis only (horizontal in columns mode, vertical in
    rows mode). Raises :class:`ImageError` when ``T`` would exceed ``cfg.max_width``.
    """
    if ink.ndim != 2 or ink.size == 0:
        raise ImageError(f"expected a non-empty 2-D image, got shape {tuple(ink.shape)}")
    if not stretch > 0:
        raise ValueError(f"stretch must be positive, got {stretch}")
    h, w = ink.shape
    if cfg.mode == "columns":
        t = max(1, round(w * cfg.height / h * stretch))
        _check_frames(t, cfg, w, h)
        frames = _resize(ink, t, cfg.height).T  # (H', T) -> (T, F)
    else:
        t = max(1, round(h * cfg.width / w * stretch))
        _check_frames(t, cfg, w, h)
        frames = _resize(ink, cfg.width, t)  # already rows: (T, F)
    return torch.from_numpy(np.ascontiguousarray(frames))


def _check_frames(t: int, cfg: ImageFrontendConfig, w: int, h: int) -> None:
    if t > cfg.max_width:
        axis = "width" if cfg.mode == "columns" else "height"
        raise ImageError(
            f"a {w}x{h} image gives a normalised {axis} of {t} frames, over max_width "
            f"{cfg.max_width}; split the image or raise max_width"
        )


def image_features(
    gray: np.ndarray, cfg: ImageFrontendConfig, stretch: float = 1.0
) -> torch.Tensor:
    """Grayscale ``(H, W)`` in ``[0, 1]`` -> float32 frames ``(T, F)``, ink high.

    Columns mode: ``T = max(1, round(W * cfg.height / H * stretch))``, ``F = cfg.height``.
    Rows mode: ``T = max(1, round(H * cfg.width / W * stretch))``, ``F = cfg.width``.
    Raises :class:`ImageError` (a ``ValueError``) when ``T`` exceeds ``cfg.max_width``.
    """
    return frames_from_ink(to_ink(np.asarray(gray), cfg.invert), cfg, stretch)


class ImageFrontend(Frontend):
    """Image file -> ink-is-high pixel-column (or row) frames; no learned statistics."""

    modality = "image"
    suffixes = IMAGE_SUFFIXES
    config_class = ImageFrontendConfig

    def raw(
        self,
        path: str | os.PathLike,
        speed: float = 1.0,
        augment: ImageAugmentConfig | None = None,
        rng: random.Random | None = None,
    ) -> torch.Tensor:
        """Frames ``(T, F)`` of one file.

        ``speed`` != 1 stretches the time axis by ``1 / speed`` (so training can
        reuse the audio speed-perturbation list). With both ``augment`` and
        ``rng``, the image is augmented (see :func:`seqrec.features.augment.augment_image`)
        before it is featurised. Raises :class:`ImageError` naming the file.
        """
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed}")
        ink = to_ink(load_image(path), self.cfg.invert)
        if augment is not None and rng is not None:
            # Augmentation works on dark-ink-on-white images whatever the file's polarity.
            ink = 1.0 - augment_image(1.0 - ink, augment, rng)
        try:
            return frames_from_ink(ink, self.cfg, 1.0 / speed)
        except ImageError as e:
            raise ImageError(f"{path}: {e}") from None
