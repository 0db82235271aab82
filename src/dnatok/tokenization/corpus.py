"""Reading BPE training corpora: FASTA (plain, .gz or bgzip) or one sequence per line."""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Iterable, Iterator

from dnatok.errors import DataError


def _open_text(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":  # gzip; bgzip is multi-member gzip, which gzip reads too
        return gzip.open(path, "rt", encoding="ascii", errors="replace")
    return open(path, "rt", encoding="ascii", errors="replace")


def read_sequences(path) -> Iterator[str]:
    """Upper-cased sequences of a FASTA file (one per record, lines joined) or of a text
    file with one sequence per line (blank lines skipped). The format is decided by the
    first non-blank line: '>' means FASTA."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "corpus file not found")
    with _open_text(path) as fh:
        fasta = None
        parts: list[str] = []
        for lineno, line in enumerate(fh, start=1):
            line = line.strip()
            if not line:
                continue
            if fasta is None:
                fasta = line.startswith(">")
            if fasta:
                if line.startswith(">"):
                    if parts:
                        yield "".join(parts).upper()
                    parts = []
                else:
                    parts.append(line)
            else:
                if line.startswith(">"):
                    raise DataError(path, lineno, "FASTA header in a one-sequence-per-line file")
                if any(c.isspace() for c in line):
                    raise DataError(path, lineno, "whitespace inside a sequence")
                yield line.upper()
        if fasta and parts:
            yield "".join(parts).upper()
        if fasta is None:
            raise DataError(path, None, "corpus file is empty")


def read_corpus(paths: Iterable) -> Iterator[str]:
    """Sequences of every file in order (deterministic)."""
    for p in paths:
        yield from read_sequences(p)
