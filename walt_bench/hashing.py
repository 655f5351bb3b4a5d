"""SHA-256 of files: the one helper behind every ``*_sha256`` field (always the full 64 hex digits).

file_sha256("runs/x/checkpoints/step_00000600.pt")   # 'a3f1...' (64 hex)
sha256_of("weights/i3d_savedmodel/")                  # a folder: every file, sorted by relative path
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """Full SHA-256 (hex) of one file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(location: str | Path) -> str:
    """SHA-256 of a file, of every file of a folder (names and bytes, sorted by relative path), or, when
    nothing exists at ``location``, of the string itself (e.g. a hub handle)."""
    path = Path(location)
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
    if not files:
        digest.update(str(location).encode())
    for file in files:
        digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(chunk)
    return digest.hexdigest()
