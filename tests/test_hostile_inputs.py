"""The hostile input corpus, generated here, each with its expected outcome: a row, or a failure with its reason code.

Most run in-process (upload, then the job function, against the session's local stack): fast, exact. A subset
goes through the real listener and worker processes, which must stay up and keep serving the queue.
"""

from __future__ import annotations

import dataclasses
import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from skimage import data as skdata

from classifier import images, jobs, ledger, model
from classifier.cloud import gcs
from classifier.config import get_config
from tests import contract
from tests.helpers import wait_for

CATS = {"Egyptian cat", "tiger cat", "tabby", "Persian cat", "Siamese cat", "lynx"}


def _save(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _cat() -> Image.Image:
    return Image.fromarray(skdata.chelsea())


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def decompression_bomb(side: int = 30000) -> bytes:
    """A real 1-bit side x side PNG of zeros: a few hundred KB on disk, 900 Mpx once decoded."""
    row = b"\x00" * (1 + side // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def exif_rotated_cat() -> bytes:
    """Chelsea's pixels turned 90 degrees counter-clockwise, with EXIF orientation 6 to show them upright again."""
    sideways = Image.fromarray(np.rot90(skdata.chelsea()).copy())
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    return _save(sideways, "JPEG", quality=95, exif=exif.tobytes())


def truncated_jpeg() -> bytes:
    return _save(Image.fromarray(skdata.rocket()), "JPEG")[:4000]


def cmyk_jpeg() -> bytes:
    return _save(_cat().convert("CMYK"), "JPEG", quality=92)


def png16() -> bytes:
    grey = (skdata.chelsea().mean(axis=2) * 257).astype(np.uint16)
    img = Image.fromarray(grey)
    assert img.mode.startswith("I;16")
    return _save(img, "PNG")


def palette_png_with_transparency() -> bytes:
    img = _cat().convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    img.info["transparency"] = 0
    return _save(img, "PNG", transparency=0)


def animated_gif() -> bytes:
    frames = [_cat(), _cat().rotate(10), _cat().rotate(20)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def huge_photo() -> bytes:
    return _save(_cat().resize((6000, 4000)), "JPEG", quality=85)


# name -> (bytes factory, content type, expected outcome, top-1 must be one of, or None)
CORPUS: dict[str, tuple[Callable[[], bytes], str | None, str, set[str] | None]] = {
    "zero-bytes.jpg": (lambda: b"", "image/jpeg", "failure:empty", None),
    "text-named.jpg": (lambda: b"Dear diary,\nthis is not a JPEG.\n" * 20, "image/jpeg", "failure:not_an_image", None),
    "truncated.jpg": (truncated_jpeg, "image/jpeg", "failure:undecodable", None),
    "bomb.png": (decompression_bomb, "image/png", "failure:too_many_pixels", None),
    "cmyk.jpg": (cmyk_jpeg, "image/jpeg", "row", CATS),
    "sixteen-bit.png": (png16, "image/png", "row", None),
    "palette-transparent.png": (palette_png_with_transparency, "image/png", "row", None),
    "grayscale.jpg": (lambda: _save(_cat().convert("L"), "JPEG"), "image/jpeg", "row", None),
    "animated.gif": (animated_gif, "image/gif", "row", None),
    "truncated.gif": (lambda: animated_gif()[:70_000], "image/gif", "failure:undecodable", None),
    "photo.webp": (lambda: _save(_cat(), "WEBP", quality=80), "image/webp", "row", CATS),
    "exif-rotated.jpg": (exif_rotated_cat, "image/jpeg", "row", CATS),
    "huge-6000x4000.jpg": (huge_photo, "image/jpeg", "row", CATS),
    "one-by-20000.png": (
        lambda: _save(Image.new("RGB", (1, 20_000)), "PNG"),
        "image/png",
        "failure:extreme_aspect_ratio",
        None,
    ),
    "photo.tiff": (lambda: _save(_cat(), "TIFF"), "image/tiff", "failure:not_an_image", None),
    "a/b/c/deep.png": (lambda: _save(_cat(), "PNG"), "image/png", "row", CATS),
    "x/../dots.png": (lambda: _save(_cat(), "PNG"), "image/png", "row", CATS),
    "with spaces  and  tabs\t.png": (lambda: _save(_cat(), "PNG"), "image/png", "row", CATS),
    "ünïcødé 猫 🐈.png": (lambda: _save(_cat(), "PNG"), "image/png", "row", CATS),
    "<script>alert('x')</script>.png": (lambda: _save(_cat(), "PNG"), "image/png", "row", CATS),
    "no-content-type": (lambda: _save(_cat(), "PNG"), None, "row", CATS),
}


@pytest.fixture(scope="module")
def corpus() -> dict[str, bytes]:
    return {name: spec[0]() for name, spec in CORPUS.items()}


@pytest.mark.parametrize("name", list(CORPUS))
def test_hostile_input_ends_as_its_expected_outcome(cfg, stack, prefix, corpus, name):
    _, content_type, expected, top1 = CORPUS[name]
    key = contract.upload(contract.quiet(cfg), f"{prefix}{name}", corpus[name], content_type)
    result = jobs.classify_object(*ledger.parse_key(key))
    assert contract.violations(cfg, {key: expected}) == {}
    if expected == "row":
        assert top1 is None or result["top"] in top1, f"{name}: top-1 {result['top']!r}"
    else:
        assert result["reason_code"] == expected.split(":", 1)[1]


def test_the_bomb_is_small_on_disk(corpus):
    assert len(corpus["bomb.png"]) < 200_000


def test_exif_rotation_is_applied_before_classifying(corpus):
    clf = model
    kwargs = dict(mean=(0.5,) * 3, std=(0.5,) * 3, max_pixels=64_000_000)
    upright = clf.preprocess(_save(_cat(), "JPEG", quality=95), **kwargs)
    rotated = clf.preprocess(corpus["exif-rotated.jpg"], **kwargs)
    shown = ImageOps.exif_transpose(Image.open(io.BytesIO(corpus["exif-rotated.jpg"]))).size
    assert shown == _cat().size
    assert (rotated - upright).abs().mean() < 0.05  # same picture, up to JPEG noise


def test_a_huge_photo_is_decoded_at_a_reduced_scale(corpus):
    img = images.open_image(corpus["huge-6000x4000.jpg"], max_pixels=64_000_000, draft_px=model.RESIZE)
    assert img.width * img.height <= 6000 * 4000 // 16  # JPEG draft: 1/4 (or less) of each side


def test_an_object_over_the_byte_limit_is_refused_before_download(cfg, stack, prefix, monkeypatch):
    small = dataclasses.replace(get_config(), max_image_bytes=1000)
    monkeypatch.setattr(jobs, "get_config", lambda: small)
    key = contract.upload(contract.quiet(cfg), f"{prefix}big.png", _save(_cat(), "PNG"), "image/png")
    assert jobs.classify_object(*ledger.parse_key(key))["reason_code"] == "too_large"
    assert contract.violations(cfg, {key: "failure:too_large"}) == {}


E2E_SUBSET = [
    "zero-bytes.jpg",
    "text-named.jpg",
    "bomb.png",
    "exif-rotated.jpg",
    "huge-6000x4000.jpg",
    "<script>alert('x')</script>.png",
]
WORKER_PEAK_RSS_MIB = 2048  # a worker holds the model (~1.2 GB); no input may add more than a few hundred MB


@pytest.mark.e2e
def test_hostile_inputs_through_the_real_processes(cfg, pipeline, prefix, corpus):
    expected = {}
    for name in E2E_SUBSET:
        expected[contract.upload(cfg, f"{prefix}{name}", corpus[name], CORPUS[name][1])] = CORPUS[name][2]
    # A plain photo after them: the queue still flows.
    expected[contract.upload(cfg, f"{prefix}after.png", _save(_cat(), "PNG"), "image/png")] = "row"
    wait_for(lambda: contract.settled(cfg, expected), timeout=90, every=0.5)
    assert contract.violations(cfg, expected) == {}
    assert all(service.alive() for service in pipeline.values())
    for name, service in pipeline.items():
        peak = _peak_rss_mib(service.proc.pid) if service.proc else None
        assert peak is None or peak < WORKER_PEAK_RSS_MIB, f"{name} peaked at {peak} MiB"


def _peak_rss_mib(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")), None)


def test_a_download_that_does_not_match_the_objects_checksum_is_retried_not_classified(cfg, stack, prefix, monkeypatch):
    """Downloads are single ranged requests, which the client library does not checksum: the CRC32C is checked
    here. A corrupted transfer (which no emulator makes: patched at the client) is a transient error for rq."""
    from google.cloud import storage

    key = contract.upload(contract.quiet(cfg), f"{prefix}flipped.png", _save(_cat(), "PNG"), "image/png")
    bucket, name, generation = ledger.parse_key(key)
    assert gcs.download(cfg, bucket=bucket, name=name, generation=generation).size > 0  # intact: accepted

    real = storage.Blob.download_as_bytes
    monkeypatch.setattr(storage.Blob, "download_as_bytes", lambda self, **kw: b"\x00" + real(self, **kw)[1:])
    with pytest.raises(gcs.DataCorruption, match="CRC32C mismatch"):
        gcs.download(cfg, bucket=bucket, name=name, generation=generation)


def test_a_download_without_an_event_time_reads_the_creation_time(cfg, stack, prefix):
    key = contract.upload(contract.quiet(cfg), f"{prefix}created.png", _save(_cat(), "PNG"), "image/png")
    bucket, name, generation = ledger.parse_key(key)
    assert gcs.download(cfg, bucket=bucket, name=name, generation=generation).time_created is None
    blob = gcs.download(cfg, bucket=bucket, name=name, generation=generation, created=True)
    assert blob.time_created is not None and blob.content_type == "image/png"
