"""Upload bytes to a checked, decoded image: what counts as a bad image, and why. Pillow only, no torch.

Kept apart from `model` so the job code can tell a bad image from a fault without the listener and the web app,
which import it only to enqueue, loading torch.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError


class BadImage(Exception):
    """The upload is not a decodable image; permanent, never retried. `code` is machine-readable."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def open_image(data: bytes, max_pixels: int, *, draft_size: int) -> Image.Image:
    """Decode `data`, refusing empty objects, non-images and decompression bombs with a BadImage."""
    if not data:
        raise BadImage("empty", "the object is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > max_pixels:
                raise BadImage(
                    "too_many_pixels",
                    f"{img.width}x{img.height} is over MAX_IMAGE_PIXELS={max_pixels} (possible decompression bomb)",
                )
            # JPEG draft mode decodes at a reduced scale straight from the DCT: 2-3x faster, same crop.
            img.draft("RGB", (draft_size, draft_size))
            img.load()
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage("too_many_pixels", f"refused as a decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise BadImage("not_an_image", "not an image format that Pillow can identify") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImage("undecodable", f"the image could not be decoded: {exc}") from None
    return img
