"""Upload bytes to a checked, decoded image, at a cost bounded by the picture asked for; what counts as a bad
image, and why. Pillow only: the listener and the web app import this without loading torch.

Shared by the worker (through `model.preprocess`) and the dashboard's thumbnails; imports neither torch nor Django.
Only the formats operators upload are opened: every other Pillow plugin (EPS runs Ghostscript; PSD, FITS,
TIFF and the rest) is attack surface that no upload needs. No step filters or converts more pixels than
the decoded image holds, and the costly ones (filters, mode conversions) run after a cheap reduction, so an
extreme shape (1 x 20,000) costs what a square one does.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import pyspng
from PIL import Image

from classifier import stages

# MPO (the multi-picture JPEG of some cameras) and APNG come through their JPEG and PNG plugins.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
# Pillow filters these modes (resize with box and reducing_gap) in place; the rest are picked down first. RGBA
# and LA are filterable but Pillow premultiplies them at full size first: a second copy of the decoded image.
_FILTERABLE = frozenset({"L", "RGB", "CMYK", "YCbCr", "I", "F"})
# Nearest-neighbour picking stops at this many times the output side; the antialiased filter does the rest.
_NEAREST_GAP = 4
# reduce() by whole factors before filtering, down to this many times the output: fast and never full-size filtering.
_REDUCING_GAP = 2.0
_ORIENTATION = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

Box = tuple[float, float, float, float]


class BadImage(Exception):
    """The upload is not a decodable image; permanent, never retried. `code` is machine-readable."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def square_rgb(
    data: bytes, *, side: int, max_pixels: int, max_aspect: float, keep: float = 1.0, out: int | None = None
) -> Image.Image:
    """The centre square of the upright image, as side x side RGB: what resize-short-side-then-centre-crop keeps.

    With `keep` < 1, the centre `keep` of that square, as `out` x `out` (default side * keep): resize to `side`
    then centre-crop `out` in one filtering pass of only the pixels kept (the same scale, the same pixel centres).
    """
    size = out if out is not None else round(side * keep)
    return _guarded(
        lambda: _square(_decoded(data, max_pixels=max_pixels, draft_px=side, max_aspect=max_aspect), size, keep)
    )


def _decoded(data: bytes, *, max_pixels: int, draft_px: int, max_aspect: float) -> Image.Image:
    with stages.stage(stages.DECODE):
        return open_image(data, max_pixels=max_pixels, draft_px=draft_px, max_aspect=max_aspect)


def thumbnail_rgb(data: bytes, *, side: int, max_pixels: int) -> Image.Image:
    """The whole upright image as RGB, fitting a side x side box."""
    return _guarded(lambda: _fit(open_image(data, max_pixels=max_pixels, draft_px=side), side))


def open_image(data: bytes, *, max_pixels: int, draft_px: int, max_aspect: float | None = None) -> Image.Image:
    """Decoded pixels of an accepted format within the limits, JPEGs at the smallest DCT scale >= draft_px."""
    if not data:
        raise BadImage("empty", "the object is empty (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
        except Image.UnidentifiedImageError:
            raise BadImage("not_an_image", f"not an accepted image format ({', '.join(ACCEPTED_FORMATS)})") from None
        _check_size(img, max_pixels, max_aspect)
        fast = _spng(img, data)
        if fast is not None:
            return fast
        img.draft("RGB", (draft_px, draft_px))
        img.load()
    return img


# RGB and RGBA PNGs (most PNG photos; 16-bit ones taken to 8 bits by their high byte, as Pillow does) are decoded
# by libspng, in C from the first chunk to the last: Pillow
# returns to Python for every IDAT chunk (astronaut.png has 97), which made these photos decode 1.2-4x slower.
# The header was read and checked by Pillow first (format, pixel count, aspect ratio), so libspng only ever sees an
# image within the limits; anything it refuses is decoded by Pillow as before, so what is accepted does not change.
_SPNG_MODES = frozenset({"RGB", "RGBA"})


def _spng(header: Image.Image, data: bytes) -> Image.Image | None:
    if header.format != "PNG" or header.mode not in _SPNG_MODES or "transparency" in header.info:
        return None
    if getattr(header, "is_animated", False):  # APNG: Pillow's first frame may not be the default image libspng reads
        return None
    try:
        pixels = pyspng.load(data, format=header.mode)
    except RuntimeError:
        return None
    if pixels.shape[:2] != (header.height, header.width):
        return None
    img = Image.fromarray(pixels, header.mode)
    if "exif" in header.info:  # an eXIf chunk ahead of the pixels, where the PNG specification puts it
        img.info["exif"] = header.info["exif"]
    return img


def _check_size(img: Image.Image, max_pixels: int, max_aspect: float | None) -> None:
    width, height = img.size
    if width * height > max_pixels:
        raise BadImage(
            "too_many_pixels",
            f"{width}x{height} is over MAX_IMAGE_PIXELS={max_pixels} (possible decompression bomb)",
        )
    if max_aspect is not None and max(width, height) > max_aspect * min(width, height):
        raise BadImage(
            "extreme_aspect_ratio",
            f"{width}x{height} is more than {max_aspect:g} times longer than wide: no picture to classify",
        )


def _guarded(decode: Callable[[], Image.Image]) -> Image.Image:
    """Any failure while Pillow reads attacker-chosen bytes is a permanent refusal, never a retry."""
    try:
        return decode()
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage("too_many_pixels", f"refused as a decompression bomb: {exc}") from None
    except MemoryError:
        # Retrying would meet the same wall, and a retry storm of such uploads would starve the queue.
        raise BadImage("out_of_memory", "decoding this image needs more memory than a worker has") from None
    except Exception as exc:  # Pillow's plugins raise OSError, SyntaxError, EOFError, struct.error, IndexError...
        raise BadImage("undecodable", f"the image could not be decoded: {exc.__class__.__name__}: {exc}") from None


def _square(img: Image.Image, side: int, keep: float = 1.0) -> Image.Image:
    # A centre square is the same pixels before and after a rotation or flip: crop first, turn the small result.
    orientation = _orientation(img)
    width, height = img.size
    short = min(width, height) * keep
    left, top = (width - short) / 2, (height - short) / 2  # fractional: centred exactly, as a filter box may be
    with stages.stage(stages.RESIZE):
        return _upright(_resized(img, (side, side), (left, top, left + short, top + short)), orientation)


def _fit(img: Image.Image, side: int) -> Image.Image:
    # Fitting a square box does not depend on the orientation either.
    orientation = _orientation(img)
    scale = min(1.0, side / max(img.size))
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return _upright(_resized(img, size, (0, 0, img.width, img.height)), orientation)


def _orientation(img: Image.Image) -> int:
    value = img.getexif().get(_ORIENTATION, 1)
    return value if isinstance(value, int) else 1


def _upright(img: Image.Image, orientation: int) -> Image.Image:
    method = _TRANSPOSE.get(orientation)
    return img if method is None else img.transpose(method)


def _resized(img: Image.Image, size: tuple[int, int], box: Box) -> Image.Image:
    """`box` of img as RGB of `size`; filtering and mode conversion only ever see a few times `size`."""
    if img.mode not in _FILTERABLE or "transparency" in img.info:
        img = _picked(img, size, box)
        box = (0, 0, img.width, img.height)
        img = _filterable(img)
    img = img.resize(size, Image.Resampling.BILINEAR, box=box, reducing_gap=_REDUCING_GAP)
    return _rgb(img)


def _picked(img: Image.Image, size: tuple[int, int], box: Box) -> Image.Image:
    """Pick every n-th pixel down to a few times size: palette, 1-bit and 16-bit pixels cannot be averaged as they
    are, and alpha would be premultiplied at full size."""
    width, height = round(box[2] - box[0]), round(box[3] - box[1])
    coarse = (max(1, min(width, size[0] * _NEAREST_GAP)), max(1, min(height, size[1] * _NEAREST_GAP)))
    img = img.resize(coarse, Image.Resampling.NEAREST, box=box)
    return img.convert("I") if img.mode.startswith("I;16") else img  # Pillow filters I, not I;16


def _filterable(img: Image.Image) -> Image.Image:
    if img.mode in ("P", "PA", "LA", "RGBA") or "transparency" in img.info:
        return img.convert("RGBA")
    if img.mode == "I":
        return img.point(lambda v: v * (1 / 256)).convert("L")  # 16-bit samples to 8 bits
    return img.convert("L") if img.mode == "1" else img.convert("RGB")


def _rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA"):
        canvas = Image.new("RGB", img.size, (255, 255, 255))
        canvas.paste(img.convert("RGBA"), mask=img.getchannel("A"))
        return canvas
    if img.mode == "I":
        img = img.point(lambda v: v * (1 / 256))
    return img if img.mode == "RGB" else img.convert("RGB")
