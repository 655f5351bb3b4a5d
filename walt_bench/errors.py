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
