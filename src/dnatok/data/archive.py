"""Read benchmark files the same way from a downloaded zip or an extracted folder.

Archives differ in their top folder (``GUE/``, ``genomic_benchmarks-605d853/datasets/``,
none…), so a file is found by its path *suffix*: ``prom/prom_core_all/train.csv`` matches
``GUE/prom/prom_core_all/train.csv``. Several matches are an error, not a guess.
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

from dnatok.errors import DataError, UserError


class SourceTree:
    def __init__(self, root):
        self.root = Path(root)
        if not self.root.exists():
            raise UserError(f"source {self.root} does not exist")
        self.zip = None
        if self.root.is_file():
            if not zipfile.is_zipfile(self.root):
                raise DataError(self.root, None, "not a zip archive or a folder")
            self.zip = zipfile.ZipFile(self.root)
            # macOS archivers add __MACOSX/ shadow copies; they are never data
            self._names = [n for n in self.zip.namelist()
                           if not n.endswith("/") and not n.startswith("__MACOSX/")]
            self._name_set = set(self._names)

    def find(self, rel: str) -> str | None:
        """The member/path ending in ``rel`` (None if absent; error if ambiguous)."""
        rel = rel.strip("/")
        if self.zip is None:
            direct = self.root / rel
            if direct.is_file():
                return str(direct)
            hits = sorted(str(p) for p in self.root.rglob(Path(rel).name)
                          if p.is_file() and p.as_posix().endswith("/" + rel))
        else:
            hits = sorted(n for n in self._names if n == rel or n.endswith("/" + rel))
        if len(hits) > 1:
            raise UserError(f"{self.root}: {rel} is ambiguous, found at {', '.join(hits[:4])}")
        return hits[0] if hits else None

    def exists(self, name: str) -> bool:
        """Whether ``name`` (a path for folders, a member name for zips) is a file."""
        return Path(name).is_file() if self.zip is None else name in self._name_set

    def label(self, name: str) -> str:
        """How errors name a file: a path, or ``archive.zip!member``."""
        return name if self.zip is None else f"{self.root}!{name}"

    def read_bytes(self, name: str) -> bytes:
        if self.zip is None:
            return Path(name).read_bytes()
        try:
            return self.zip.read(name)
        except (zipfile.BadZipFile, OSError) as err:
            raise DataError(self.label(name), None, f"cannot read from archive: {err}") from None

    def open_text(self, name: str) -> tuple[io.TextIOBase, str]:
        """Text handle (transparently gunzipping ``*.gz``) and the sha256 of the raw bytes."""
        import gzip

        raw = self.read_bytes(name)
        digest = hashlib.sha256(raw).hexdigest()
        if name.endswith(".gz"):
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError) as err:
                raise DataError(self.label(name), None, f"corrupt gzip: {err}") from None
        text = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8-sig", newline="")
        return text, digest

    def close(self):
        if self.zip is not None:
            self.zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
