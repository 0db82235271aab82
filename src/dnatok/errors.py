"""Errors that reach the user as one clear line (the CLI prints them and exits 2)."""
from __future__ import annotations


class UserError(Exception):
    """Bad input or usage: the message says what and where."""


class DataError(UserError):
    """A problem in an input file, located by file and line (the header is line 1)."""

    def __init__(self, path, line: int | None, problem: str):
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
