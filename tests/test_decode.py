"""Decoding uploads: only the accepted formats, and a cost bounded by the output whatever the upload's shape."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pyspng
import pytest
import torch
from PIL import Image, ImageFile
from skimage import data as skdata
from torchvision.transforms.v2 import functional as TF

from classifier import images, model
from tests.decode_run import run_child

KWARGS = {"mean": (0.5,) * 3, "std": (0.5,) * 3, "max_pixels": 64_000_000}
# What decoding one input may add to a worker's resident memory: the decoded pixels themselves (at most
# MAX_IMAGE_PIXELS; the largest input below is 36 Mpx RGBA, 137 MiB) and a few MiB for the output and zlib.
SHAPES_PEAK_MIB = 160


def _save(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **kwargs)
    return out.getvalue()


def _cat() -> Image.Image:
    return Image.fromarray(skdata.chelsea())


def _shapes() -> dict[str, tuple[bytes, str]]:
    grey16 = Image.fromarray(np.full((3000, 4000), 40_000, dtype=np.uint16))
    return {
        "1x20000.png": (_save(Image.new("RGB", (1, 20_000)), "PNG"), "failure:extreme_aspect_ratio"),
        "200000x1.png": (_save(Image.new("L", (200_000, 1)), "PNG"), "failure:extreme_aspect_ratio"),
        "3x65500.jpg": (_save(Image.new("RGB", (3, 65_500)), "JPEG"), "failure:extreme_aspect_ratio"),
        "400x8000.png": (_save(Image.new("RGB", (400, 8000), (200, 10, 10)), "PNG"), "tensor"),
        "6000x6000-palette.png": (_save(Image.new("P", (6000, 6000), 3), "PNG"), "tensor"),
        "6000x6000-rgba.png": (_save(Image.new("RGBA", (6000, 6000), (1, 2, 3, 4)), "PNG"), "tensor"),
        "4000x3000-16bit.png": (_save(grey16, "PNG"), "tensor"),
        "30000x1500.png": (_save(Image.new("L", (30_000, 1500), 90), "PNG"), "tensor"),
    }


def test_extreme_shapes_cost_what_a_square_does(tmp_path: Path) -> None:
    """Before: resizing the short side of 1 x 20,000 to 256 made 256 x 5,120,000 (6 GB) and the worker was killed."""
    shapes = _shapes()
    report = run_child(
        tmp_path,
        {name: blob for name, (blob, _) in shapes.items()},
        names=list(shapes),
        headroom_mib=1536,
        timeout_s=300,
    )
    print(f"extreme shapes: {report}")
    assert report["results"] == {name: expected for name, (_, expected) in shapes.items()}
    assert report["peak_growth_mib"] < SHAPES_PEAK_MIB, report


@pytest.mark.parametrize(
    "fmt", ["TIFF", "ICO", "PCX", "TGA", "PPM", "SGI", "DDS", "QOI", "IM", "JPEG2000", "EPS", "PDF"]
)
def test_formats_operators_do_not_upload_are_not_images(fmt: str) -> None:
    try:
        blob = _save(_cat().resize((64, 48)), fmt)
    except (KeyError, OSError) as exc:
        pytest.skip(f"this Pillow cannot write {fmt}: {exc}")
    with pytest.raises(model.BadImage) as excinfo:
        model.preprocess(blob, **KWARGS)
    assert excinfo.value.code == "not_an_image"
    assert "JPEG, PNG, WEBP, GIF, BMP" in excinfo.value.reason


def test_a_fits_file_is_not_an_image() -> None:
    header = b"".join(
        card.ljust(80).encode()
        for card in [
            "SIMPLE  =                    T",
            "BITPIX  =                    8",
            "NAXIS   =                    2",
            "NAXIS1  =                   16",
            "NAXIS2  =                   16",
            "END",
        ]
    )
    blob = header.ljust(2880, b" ") + bytes(256).ljust(2880, b"\0")
    assert Image.open(io.BytesIO(blob)).format == "FITS"  # Pillow alone would open it
    with pytest.raises(model.BadImage) as excinfo:
        model.preprocess(blob, **KWARGS)
    assert excinfo.value.code == "not_an_image"


@pytest.mark.parametrize(
    ("fmt", "kwargs"),
    [
        ("JPEG", {}),
        ("MPO", {"save_all": True}),
        ("PNG", {}),
        ("WEBP", {}),
        ("GIF", {}),
        ("BMP", {}),
    ],
)
def test_accepted_formats_are_classified(fmt: str, kwargs: dict[str, object]) -> None:
    tensor = model.preprocess(_save(_cat(), fmt, **kwargs), **KWARGS)
    assert tuple(tensor.shape) == (3, model.CROP, model.CROP)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])  # Pillow decodes the JPEG, libspng the 8-bit RGB PNG
def test_a_memory_error_while_decoding_is_a_permanent_failure(monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    """Before: the MemoryError reached rq, which retried the job three times into the same wall."""

    def exhausted(*args: object, **kwargs: object) -> None:
        raise MemoryError

    blob = _save(_cat(), fmt)
    monkeypatch.setattr(ImageFile.ImageFile, "load", exhausted)
    monkeypatch.setattr(pyspng, "load", exhausted)
    with pytest.raises(model.BadImage) as excinfo:
        model.preprocess(blob, **KWARGS)
    assert excinfo.value.code == "out_of_memory" and excinfo.value.reason


def _reference(blob: bytes) -> torch.Tensor:
    """The classic pipeline at full size: what the bounded one must match."""
    img = Image.open(io.BytesIO(blob)).convert("RGB")
    img = TF.resize(img, [model.RESIZE], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    tensor = TF.to_dtype(TF.pil_to_tensor(TF.center_crop(img, [model.CROP, model.CROP])), torch.float32, scale=True)
    return TF.normalize(tensor, [0.5] * 3, [0.5] * 3)


@pytest.mark.parametrize("photo", ["chelsea", "coffee", "astronaut", "rocket"])
def test_cropping_first_sees_the_same_picture(photo: str) -> None:
    blob = _save(Image.fromarray(getattr(skdata, photo)()), "PNG")
    assert (model.preprocess(blob, **KWARGS) - _reference(blob)).abs().mean() < 0.02  # up to a sub-pixel shift


def test_thumbnails_keep_the_shape_and_fit_the_box() -> None:
    thumb = images.thumbnail_rgb(_save(Image.new("P", (3, 60_000)), "PNG"), side=224, max_pixels=64_000_000)
    assert thumb.mode == "RGB" and thumb.size == (1, 224)
    assert images.thumbnail_rgb(_save(_cat(), "WEBP"), side=224, max_pixels=64_000_000).size == (224, 149)


def _oriented(img: Image.Image, orientation: int) -> dict[str, object]:
    exif = img.getexif()
    exif[0x0112] = orientation
    return {"exif": exif.tobytes()}


@pytest.mark.parametrize(
    ("mode", "orientation"), [("RGB", 1), ("RGBA", 1), ("RGB", 6), ("RGBA", 8)], ids=["rgb", "rgba", "rgb-6", "rgba-8"]
)
def test_libspng_decodes_8_bit_pngs_to_the_same_picture_as_pillow(
    monkeypatch: pytest.MonkeyPatch, mode: str, orientation: int
) -> None:
    """The PNGs libspng decodes (8-bit RGB and RGBA) give the tensor Pillow's decoder gives, alpha and the eXIf
    orientation included; before libspng, Pillow decoded them all."""
    cat = _cat().resize((451, 300)).convert(mode)
    if mode == "RGBA":
        cat.putalpha(Image.linear_gradient("L").resize(cat.size))
    blob = _save(cat, "PNG", **_oriented(cat, orientation))
    used = []
    real = pyspng.load
    monkeypatch.setattr(pyspng, "load", lambda *a, **k: used.append(1) or real(*a, **k))
    fast = model.preprocess(blob, **KWARGS)
    assert used, "libspng did not decode this PNG"
    monkeypatch.setattr(images, "_spng", lambda header, data: None)
    assert torch.equal(fast, model.preprocess(blob, **KWARGS))
    if orientation != 1:
        assert not torch.equal(fast, model.preprocess(_save(cat, "PNG"), **KWARGS))


def _png16(pixels: np.ndarray, color_type: int) -> bytes:
    """A 16-bit PNG (Pillow writes none): signature, IHDR, one IDAT of unfiltered rows, IEND."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(("channels", "color_type"), [(3, 2), (4, 6)], ids=["rgb16", "rgba16"])
def test_libspng_takes_16_bit_pngs_to_8_bits_as_pillow_does(
    monkeypatch: pytest.MonkeyPatch, channels: int, color_type: int
) -> None:
    blob = _png16(np.random.default_rng(channels).integers(0, 65_536, (300, 400, channels)), color_type)
    fast = model.preprocess(blob, **KWARGS)
    monkeypatch.setattr(images, "_spng", lambda header, data: None)
    assert torch.equal(fast, model.preprocess(blob, **KWARGS))


def test_a_png_libspng_refuses_is_decoded_by_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    """What Pillow accepted before is still accepted: libspng's refusal hands the PNG back to Pillow."""
    blob = _save(_cat(), "PNG")
    expected = model.preprocess(blob, **KWARGS)

    def refuses(*args: object, **kwargs: object) -> None:
        raise RuntimeError("pyspng: could not decode image: ...")

    monkeypatch.setattr(pyspng, "load", refuses)
    assert torch.equal(model.preprocess(blob, **KWARGS), expected)


def test_an_animated_png_is_decoded_by_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    """APNG's first frame (Pillow) need not be the default image libspng would read: Pillow keeps it."""
    frames = [_cat().resize((300, 200)), _cat().resize((300, 200)).rotate(90)]
    blob = _save(frames[0], "PNG", save_all=True, append_images=frames[1:], default_image=False)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("libspng decoded an animated PNG")

    monkeypatch.setattr(pyspng, "load", never)
    assert model.preprocess(blob, **KWARGS).shape == (3, model.CROP, model.CROP)
