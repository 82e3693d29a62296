"""Inputs for the decode fuzz test: seed files, seeded mutations of them, and generated images of extreme shapes.

Input i of a run is made from `random.Random(f"{seed}:{i}")` alone, so any one input can be rebuilt from the
seed and its index (SIGHTLINE_FUZZ_SEED, SIGHTLINE_FUZZ_ONLY) without replaying the ones before it.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

EXTREMES = (0, 1, 2, 255, 256, 32767, 32768, 65535, 65536, 2**24 - 1, 2**31 - 1, 2**32 - 1)
INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF)
SHAPES_SHARE = 0.06  # of the inputs are freshly generated extreme shapes; the rest mutate a seed file
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

Mutator = Callable[[random.Random, bytes], bytes]


# --- seeds (built by the parent test, where the hostile corpus and real photos are at hand) --------------------


def _save(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **kwargs)
    return out.getvalue()


def photo_variants(name: str, photo: Image.Image) -> dict[str, bytes]:
    """A small thumbnail of a real photo in every accepted format and the modes uploads come in."""
    small = photo.convert("RGB")
    small.thumbnail((72, 72))
    exif = Image.Exif()
    exif[0x0112] = 6
    grey16 = Image.fromarray(np.asarray(small.convert("L"), dtype=np.uint16) * 257)
    return {
        f"{name}.jpg": _save(small, "JPEG", quality=85),
        f"{name}-progressive.jpg": _save(small, "JPEG", progressive=True, quality=70),
        f"{name}-cmyk.jpg": _save(small.convert("CMYK"), "JPEG"),
        f"{name}-exif.jpg": _save(small, "JPEG", exif=exif.tobytes()),
        f"{name}.png": _save(small, "PNG"),
        f"{name}-interlaced.png": _save(small, "PNG", interlace=1),
        f"{name}-rgba.png": _save(small.convert("RGBA"), "PNG"),
        f"{name}-palette.png": _save(small.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG"),
        f"{name}-1bit.png": _save(small.convert("1"), "PNG"),
        f"{name}-16bit.png": _save(grey16, "PNG"),
        f"{name}.gif": _save(small, "GIF", save_all=True, append_images=[small.rotate(90)]),
        f"{name}.webp": _save(small, "WEBP", quality=60),
        f"{name}-lossless.webp": _save(small.convert("RGBA"), "WEBP", lossless=True),
        f"{name}.bmp": _save(small, "BMP"),
        f"{name}-palette.bmp": _save(small.convert("P"), "BMP"),
    }


def write_seeds(folder: Path, seeds: dict[str, bytes]) -> None:
    for index, (name, data) in enumerate(sorted(seeds.items())):
        (folder / f"{index:03d}").write_bytes(data)
        (folder / f"{index:03d}.name").write_text(name)


def load_seeds(folder: Path) -> dict[str, bytes]:
    return {p.with_suffix(".name").read_text(): p.read_bytes() for p in sorted(folder.glob("[0-9][0-9][0-9]"))}


def warmup_png() -> bytes:
    return _save(Image.new("RGB", (32, 24), (10, 20, 30)), "PNG")


# --- byte-level mutations ---------------------------------------------------------------------------------------


def bit_flips(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        pos = rng.randrange(len(out))
        out[pos] ^= 1 << rng.randrange(8)
    return bytes(out)


def interesting_bytes(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        out[rng.randrange(len(out))] = rng.choice(INTERESTING_BYTES)
    return bytes(out)


def truncation(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))]


def insertion(rng: random.Random, data: bytes) -> bytes:
    pos = rng.randrange(len(data) + 1)
    return data[:pos] + rng.randbytes(rng.randint(1, 64)) + data[pos:]


def deletion(rng: random.Random, data: bytes) -> bytes:
    start = rng.randrange(len(data))
    return data[:start] + data[start + rng.randint(1, 64) :]


def duplication(rng: random.Random, data: bytes) -> bytes:
    start = rng.randrange(len(data))
    piece = data[start : start + rng.randint(1, 256)]
    pos = rng.randrange(len(data) + 1)
    return data[:pos] + piece * rng.randint(1, 4) + data[pos:]


# --- format-aware mutations: header fields and chunk structure --------------------------------------------------


def _chunk(kind: bytes, body: bytes, *, fix_crc: bool = True) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF if fix_crc else 0xDEADBEEF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]] | None:
    if not data.startswith(PNG_SIGNATURE):
        return None
    chunks, pos = [], len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks or None


def png_header(rng: random.Random, data: bytes) -> bytes:
    """IHDR's width, height, bit depth, colour type or interlace set to extremes, CRC usually fixed."""
    chunks = _png_chunks(data)
    if not chunks or chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 13:
        return bit_flips(rng, data)
    fields = list(struct.unpack(">IIBBBBB", chunks[0][1]))
    field = rng.randrange(7)
    fields[field] = rng.choice(EXTREMES) if field < 2 else rng.choice((0, 1, 2, 3, 4, 6, 8, 16, 255))
    fields[0], fields[1] = (min(f, 2**32 - 1) for f in fields[:2])
    ihdr = struct.pack(">IIBBBBB", *fields)
    chunks[0] = (b"IHDR", ihdr)
    fix = rng.random() < 0.9
    return PNG_SIGNATURE + b"".join(_chunk(k, b, fix_crc=fix or k != b"IHDR") for k, b in chunks)


def png_chunks(rng: random.Random, data: bytes) -> bytes:
    """Chunks dropped, doubled, swapped, or a garbage ancillary chunk added; CRCs recomputed."""
    chunks = _png_chunks(data)
    if not chunks:
        return deletion(rng, data)
    i, j = rng.randrange(len(chunks)), rng.randrange(len(chunks))
    action = rng.randrange(4)
    if action == 0:
        del chunks[i]
    elif action == 1:
        chunks.insert(i, chunks[j])
    elif action == 2:
        chunks[i], chunks[j] = chunks[j], chunks[i]
    else:
        kind = rng.choice((b"tEXt", b"zTXt", b"iCCP", b"eXIf", b"PLTE", b"tRNS", b"acTL", b"fcTL", b"sBIT", b"gAMA"))
        chunks.insert(max(1, i), (kind, rng.randbytes(rng.randint(0, 300))))
    return PNG_SIGNATURE + b"".join(_chunk(k, b) for k, b in chunks)


def _jpeg_segments(data: bytes) -> list[tuple[int, int]]:
    """(offset, length incl. marker) of each marker segment up to the first scan."""
    segments, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segments.append((pos, 2 + length))
        if marker == 0xDA:
            break
        pos += 2 + length
    return segments


def jpeg_header(rng: random.Random, data: bytes) -> bytes:
    """The frame header's height, width or component count set to extremes, or a segment dropped or doubled."""
    segments = _jpeg_segments(data)
    if not data.startswith(b"\xff\xd8") or not segments:
        return bit_flips(rng, data)
    out = bytearray(data)
    sof = [s for s in segments if data[s[0] + 1] in (0xC0, 0xC1, 0xC2)]
    if sof and rng.random() < 0.6:
        offset = sof[0][0] + 5 + 2 * rng.randrange(2)  # height, then width
        out[offset : offset + 2] = struct.pack(">H", rng.choice((0, 1, 2, 16, 255, 4096, 32768, 65535)))
        if rng.random() < 0.2:
            out[sof[0][0] + 9] = rng.choice((0, 2, 4, 255))  # components
        return bytes(out)
    start, length = rng.choice(segments)
    segment = data[start : start + length]
    return data[:start] + (segment * 2 if rng.random() < 0.5 else b"") + data[start + length :]


def gif_header(rng: random.Random, data: bytes) -> bytes:
    if not data.startswith(b"GIF8") or len(data) < 13:
        return bit_flips(rng, data)
    out = bytearray(data)
    descriptor = data.find(b"\x2c", 13)
    offset = rng.choice([6, 8] + ([descriptor + 5, descriptor + 7] if descriptor > 0 else []))
    out[offset : offset + 2] = struct.pack("<H", rng.choice((0, 1, 255, 32768, 65535)))
    return bytes(out)


def bmp_header(rng: random.Random, data: bytes) -> bytes:
    """Width, height (negative: top-down), bit count, compression or palette size set to extremes."""
    if not data.startswith(b"BM") or len(data) < 54:
        return bit_flips(rng, data)
    out = bytearray(data)
    offset, fmt = rng.choice(((18, "<i"), (22, "<i"), (28, "<H"), (30, "<I"), (46, "<I"), (10, "<I")))
    values = (0, 1, -1, 65535, -65535, 2**31 - 1, -(2**31)) if fmt == "<i" else (0, 1, 3, 4, 32, 255, 65535)
    value = rng.choice(values)
    if fmt != "<i":
        value &= 0xFFFF if fmt == "<H" else 0xFFFFFFFF
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def webp_header(rng: random.Random, data: bytes) -> bytes:
    """The RIFF size, or the VP8X canvas size, or the VP8/VP8L frame size set to extremes."""
    if not data.startswith(b"RIFF") or data[8:12] != b"WEBP" or len(data) < 30:
        return bit_flips(rng, data)
    out = bytearray(data)
    kind = data[12:16]
    choice = rng.randrange(3)
    if choice == 0:
        struct.pack_into("<I", out, 4, rng.choice((0, 4, 2**31, 2**32 - 1)))
    elif kind == b"VP8X":
        out[24 + 3 * rng.randrange(2) : 27 + 3 * rng.randrange(2)] = rng.choice((b"\xff\xff\xff", b"\x00\x00\x00"))
    elif kind == b"VP8L":
        struct.pack_into("<I", out, 21, rng.getrandbits(32))
    else:
        struct.pack_into("<H", out, 26 + 2 * rng.randrange(2), rng.choice((0, 1, 0x3FFF, 0xFFFF)))
    return bytes(out)


MUTATORS: tuple[Mutator, ...] = (
    bit_flips,
    interesting_bytes,
    truncation,
    insertion,
    deletion,
    duplication,
    png_header,
    png_chunks,
    jpeg_header,
    gif_header,
    bmp_header,
    webp_header,
)


# --- generated extreme shapes -----------------------------------------------------------------------------------


def extreme_shape(rng: random.Random) -> tuple[str, bytes]:
    """A real image whose one side is 1-4 px and the other as long as its format allows (or a long ribbon)."""
    formats = (("PNG", 200_000), ("JPEG", 65_500), ("GIF", 65_535), ("BMP", 100_000), ("WEBP", 16_383))
    fmt, longest = rng.choice(formats)
    short, long = rng.randint(1, 4), rng.randint(1_000, longest)
    if rng.random() < 0.2:  # around the aspect bound
        short = rng.randint(5, 40)
        long = round(short * rng.uniform(15, 25))
    size = (short, long) if rng.random() < 0.5 else (long, short)
    mode = "L" if fmt == "GIF" else rng.choice(("RGB", "L", "P", "RGBA", "1")) if fmt == "PNG" else "RGB"
    img = Image.new(mode, size, rng.randrange(256) if mode in ("L", "P", "1") else (rng.randrange(256),) * len(mode))
    return f"shape-{fmt}-{mode}-{size[0]}x{size[1]}", _save(img, fmt)


class Stream:
    """`count` inputs of a run; input i depends only on the seed, i and the seed files."""

    def __init__(self, seeds: dict[str, bytes], *, seed: int, count: int, only: int | None = None) -> None:
        self.seeds = sorted(seeds.items())
        self.seed = seed
        self.indexes = range(count) if only is None else range(only, only + 1)

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        for index in self.indexes:
            yield self.make(index)

    def make(self, index: int) -> tuple[str, bytes]:
        rng = random.Random(f"{self.seed}:{index}")
        if rng.random() < SHAPES_SHARE:
            return extreme_shape(rng)
        name, data = rng.choice(self.seeds)
        steps = []
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            mutate = rng.choice(MUTATORS)
            data = mutate(rng, data) if data else data
            steps.append(mutate.__name__)
        return f"{name}+{'+'.join(steps)}", data
