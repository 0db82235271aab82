"""Small I/O helpers shared by every stage: atomic outputs and provenance records."""
from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

TRACKED_PACKAGES = ("dnatok", "torch", "transformers", "tokenizers", "numpy", "pandas",
                    "scipy", "scikit-learn", "pyfaidx", "snakemake", "mamba-ssm", "causal-conv1d")


@contextlib.contextmanager
def atomic_path(path, is_dir: bool = False):
    """Yield a temporary sibling path; move it onto ``path`` only if the block succeeds.

    A failed stage therefore leaves no partial output behind (Snakemake would
    otherwise see a complete-looking file, and users a half-written table).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    target = tmp / path.name
    if is_dir:
        target.mkdir()
    try:
        yield target
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_json(path, missing: str):
    """The JSON object in ``path``; ``missing`` is the error when the file does not exist,
    and invalid JSON is an error naming the file."""
    from dnatok.errors import UserError

    path = Path(path)
    if not path.is_file():
        raise UserError(missing)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: invalid JSON ({err})") from None


def write_json(path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def git_commit(start: Path | None = None) -> str | None:
    here = Path(start or Path(__file__).resolve().parent)
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance(**extra) -> dict:
    """What produced a result: versions, git commit, host, time, plus the caller's fields
    (resolved config, seed, device, wall time …)."""
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "argv": sys.argv,
        "packages": package_versions(),
        **extra,
    }
