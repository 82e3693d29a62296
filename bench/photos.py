"""Real photos shipped in installed packages (offline), as an uploader sends them: the files' own bytes."""

from __future__ import annotations

from pathlib import Path


def sources() -> dict[str, Path]:
    import matplotlib
    import skimage
    import sklearn

    skimage_dir = Path(skimage.__file__).parent / "data"
    sklearn_dir = Path(sklearn.__file__).parent / "datasets" / "images"
    mpl_dir = Path(matplotlib.get_data_path()) / "sample_data"
    found = {
        **{p.name: p for p in sorted(skimage_dir.iterdir()) if p.stem in SKIMAGE},
        "china.jpg": sklearn_dir / "china.jpg",
        "flower.jpg": sklearn_dir / "flower.jpg",
        "grace_hopper.jpg": mpl_dir / "grace_hopper.jpg",
    }
    missing = [name for name, path in found.items() if not path.is_file()]
    if missing or len(found) != len(SKIMAGE) + 3:
        raise SystemExit(f"sample photos missing: {missing or sorted(set(SKIMAGE) - {Path(n).stem for n in found})}")
    return found


SKIMAGE = ("chelsea", "coffee", "rocket", "astronaut", "motorcycle_left", "hubble_deep_field")


def load() -> dict[str, bytes]:
    return {name: path.read_bytes() for name, path in sources().items()}


def sizes() -> dict[str, str]:
    from PIL import Image

    out = {}
    for name, path in sources().items():
        with Image.open(path) as img:
            out[name] = f"{img.width}x{img.height} {img.format} {path.stat().st_size // 1024} KiB"
    return out
