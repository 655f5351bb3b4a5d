"""Errors that the CLI turns into a clear message and exit status 2.

Raise :class:`UserError` (or a subclass) at a boundary where the *input* is wrong: a spec, a data
file, a checkpoint or a weights file. The message must say what was given, what was expected and
what to do. Bugs stay ordinary exceptions with tracebacks.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user; the CLI prints the message and exits with status 2."""

    exit_code = 2


class SpecError(UserError):
    """A spec failed validation; ``problems`` lists every bad field at once."""

    def __init__(self, problems: list[str], source: str = "spec"):
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{lines}")


class DataError(UserError):
    """A dataset root, annotation or media file is missing or unreadable."""


class CheckpointError(UserError):
    """A checkpoint is missing, corrupt or belongs to a different spec."""


class WeightsError(UserError):
    """Feature-extractor or perceptual-network weights are missing or do not match."""


class StorageError(UserError):
    """Writing an output failed for a reason the user fixes: a full disk, a quota, a read-only or unwritable
    folder. The message names the path, the cause and what to free or change."""


DISK_FULL = ("ENOSPC", "EDQUOT", "EFBIG")
NOT_WRITABLE = ("EACCES", "EPERM", "EROFS")


def storage_error(exc: BaseException, path, what: str = "a file") -> StorageError | None:
    """A :class:`StorageError` for ``exc`` (an ``OSError`` of a full disk or an unwritable path) while writing
    ``what`` at ``path``; ``None`` when ``exc`` is some other failure (a bug or an interrupt: let it propagate)."""
    import errno
    import shutil
    from pathlib import Path

    if not isinstance(exc, OSError) or exc.errno is None:
        return None
    name = errno.errorcode.get(exc.errno, "")
    path = Path(path)
    if name in DISK_FULL:
        free = ""
        for d in (path, *path.parents):
            if d.exists():
                try:
                    free = f" ({shutil.disk_usage(d).free / 2**20:.0f} MiB free on that filesystem now)"
                except OSError:
                    pass
                break
        return StorageError(
            f"no space left while writing {what} {path}{free}: {exc.strerror}. Free space on that filesystem "
            "(old runs, replaced-*/ and corrupt/ folders under checkpoints/, caches), or lower train.keep_last, or "
            "point run.out_dir elsewhere; then run the same command again: it resumes from the last complete "
            "checkpoint, which is intact."
        )
    if name in NOT_WRITABLE:
        return StorageError(
            f"cannot write {what} {path}: {exc.strerror}. Make that folder writable (or mount it read-write), or "
            "point run.out_dir (or the --out path) to a folder you can write."
        )
    return None
