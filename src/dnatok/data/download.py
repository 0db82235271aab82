"""Downloads with checksums, resume, offline mirrors and clear errors.

``download(source, dest, mirror=None)`` fetches one resource into ``dest``:

* ``{"kind": "http", "url": ...}`` (also ftp:// URLs): urllib, resumed with an HTTP
  ``Range`` request from ``dest.part`` when a transfer broke off;
* ``{"kind": "gdown", "id": ...}`` (or ``"url"``): Google Drive through gdown (resumable);
* ``{"kind": "hf", "repo_id": ..., "repo_type": "dataset", "allow_patterns": [...]}``:
  a Hugging Face hub snapshot into the folder ``dest`` (optional ``revision``,
  ``endpoint`` for a hub mirror).

A source may pin ``"sha256"`` (files only). Extra keys (``filename``…) are ignored.

``mirror``: a local file or folder used *instead of the network* (compute nodes without
internet). A folder is searched for a file named like ``dest``; for a hub source it is a
snapshot whose files matching ``allow_patterns`` are copied; for a ``.zip`` destination a
folder without such a file (an extracted archive) is packed into a deterministic zip.

Whatever the origin, the result goes through the same checks before it is renamed onto
``dest``: an HTML page instead of data (Google Drive's quota page gets its own message),
a zip that fails ``ZipFile.testzip`` (truncated), a gzip stream that does not decompress to
its end, a parquet file without its magic bytes, and the pinned checksum. The sha256 of
each file is then recorded in a sidecar ``<dest>.sha256`` (``sha256sum -c`` format,
relative to ``dest``'s folder); later calls with an existing ``dest`` verify it against the
sidecar instead of downloading again.
"""
from __future__ import annotations

import fnmatch
import gzip
import http.client
import logging
import os
import shutil
import time
import zipfile
import zlib
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from dnatok.data.validate import sha256_file
from dnatok.errors import DataError, UserError

log = logging.getLogger(__name__)

KINDS = ("http", "gdown", "hf")
TIMEOUT_S = 60
CHUNK = 1 << 20

# Where the study's inputs live upstream (the configs repeat these; kept here for the CLI
# and the README). GUE: DNABERT-2's Google Drive file; NT: the revised hub dataset.
KNOWN_SOURCES = {
    "gue": {"kind": "gdown", "id": "1GRtbzTe3UXYF1oW27ASNhYX3SZ16D7N2", "filename": "GUE.zip"},
    "nt": {"kind": "hf", "repo_id": "InstaDeepAI/nucleotide_transformer_downstream_tasks_revised",
           "repo_type": "dataset", "allow_patterns": ["*/train.parquet", "*/test.parquet"]},
    "hg38_ml": {"kind": "http", "url": "https://storage.googleapis.com/basenji_barnyard2/hg38.ml.fa.gz"},
    "hg38_intervals": {"kind": "http", "url": "https://storage.googleapis.com/basenji_barnyard2/sequences_human.bed"},
}


# --------------------------------------------------------------------------- checksums
def sidecar_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def manifest(path: Path, name: str | None = None) -> dict[str, str]:
    """``{relative name: sha256}`` of a file or of every file under a folder (hub caches
    under ``.cache/`` excluded). Names are relative to the parent of ``dest``."""
    name = name or path.name
    if path.is_file():
        return {name: sha256_file(path)}
    out = {}
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path).as_posix()
        if p.is_file() and not rel.startswith(".cache/"):
            out[f"{name}/{rel}"] = sha256_file(p)
    return out


def read_sidecar(path: Path) -> dict[str, str]:
    out = {}
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name:
            raise DataError(path, i, "expected '<sha256>  <name>' (sha256sum format)")
        out[name] = digest
    return out


def write_sidecar(path: Path, entries: dict[str, str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{d}  {n}\n" for n, d in sorted(entries.items())))
    os.replace(tmp, path)


# --------------------------------------------------------------------------- content checks
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<!--")


def _looks_like_html(head: bytes) -> bool:
    return head.lstrip().lower().startswith(_HTML_STARTS)


def check_payload(path: Path, what: str) -> None:
    """Raise ``UserError`` when ``path`` is not plausibly the resource ``what`` names."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if not head:
        raise UserError(f"{what}: the download is empty")
    name = path.name.lower()
    if _looks_like_html(head) and not name.endswith((".html", ".htm")):
        text = head.decode("utf-8", "replace").lower()
        if "quota" in text or "too many users" in text:
            raise UserError(f"{what}: Google Drive refused the file (download quota exceeded: too many users "
                            "fetched it recently). Retry in ~24 h, or fetch it in a browser and pass the "
                            "file with --mirror")
        title = text.split("<title>", 1)[1].split("</title>", 1)[0].strip() if "<title>" in text else ""
        raise UserError(f"{what}: the server sent an HTML page instead of the file"
                        + (f" (page title: {title!r})" if title else "")
                        + "; check the URL/permissions, or pass a local copy with --mirror")
    if head[:4] == b"PK\x03\x04" or name.endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise UserError(f"{what}: not a readable zip archive ({err}): truncated or corrupt download; "
                            "delete it and retry") from None
        if bad is not None:
            raise UserError(f"{what}: member {bad} of the zip fails its CRC check: corrupt download")
    elif head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as fh:
                while fh.read(CHUNK):
                    pass
        except (OSError, EOFError, zlib.error) as err:
            raise UserError(f"{what}: gzip stream is truncated or corrupt ({err}); delete it and retry") from None
    elif name.endswith(".parquet"):
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 4))
            tail = fh.read(4)
        if path.stat().st_size < 8 or head[:4] != b"PAR1" or tail != b"PAR1":
            raise UserError(f"{what}: not a complete parquet file (magic bytes missing): truncated download?")


def check_tree(path: Path, what: str) -> None:
    files = [path] if path.is_file() else [p for p in sorted(path.rglob("*"))
                                           if p.is_file() and ".cache" not in p.relative_to(path).parts]
    if not files:
        raise UserError(f"{what}: nothing was downloaded (no file matched)")
    for f in files:
        check_payload(f, f"{what} ({f.name})" if f != path else what)


# --------------------------------------------------------------------------- fetchers
def _describe(source: dict) -> str:
    kind = source.get("kind")
    if kind == "http":
        return source.get("url", "?")
    if kind == "gdown":
        return f"Google Drive {source.get('id') or source.get('url')}"
    if kind == "hf":
        return f"hub {source.get('repo_type', 'model')} {source.get('repo_id')}"
    return str(source)


def fetch_http(url: str, part: Path, timeout: float | None = None) -> None:
    """Download ``url`` into ``part``, resuming from its current size when the server
    honours ``Range``. A broken transfer keeps ``part`` so the next call resumes."""
    if url.startswith("ftp://ftp.ensembl.org/"):
        # Ensembl serves the same tree over HTTPS, which resumes and passes proxies.
        url = "https://" + url[len("ftp://"):]
    timeout = TIMEOUT_S if timeout is None else timeout
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "dnatok"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as err:
        if err.code == 416 and have:
            # our partial file is not a prefix the server recognises: start over
            part.unlink()
            return fetch_http(url, part, timeout)
        if err.code == 404:
            raise UserError(f"{url}: not found (HTTP 404)") from None
        raise UserError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise UserError(f"{url}: cannot connect ({reason}); on a machine without internet pass a local "
                        "copy with --mirror") from None
    with resp:
        status = getattr(resp, "status", 200)
        resumed = bool(have) and status == 206
        if have and not resumed:
            log.info("%s: server ignored the Range request, downloading from the start", url)
            have = 0
        length = resp.headers.get("Content-Length")
        expected = have + int(length) if length is not None and length.isdigit() else None
        got = have
        try:
            with open(part, "ab" if resumed else "wb") as out:
                for block in iter(lambda: resp.read(CHUNK), b""):
                    out.write(block)
                    got += len(block)
        except (OSError, http.client.HTTPException) as err:
            # connection reset, timeout, IncompleteRead: keep what arrived for the next try
            raise UserError(f"{url}: transfer broke off after {got} bytes ({err!r}); run again to resume") from None
    if expected is not None and got < expected:
        raise UserError(f"{url}: transfer broke off after {got} of {expected} bytes; run again to resume")


def fetch_gdown(source: dict, part: Path) -> None:
    import gdown
    from gdown.exceptions import DownloadError, FileURLRetrievalError

    kw = {"id": source["id"]} if source.get("id") else {"url": source.get("url")}
    if not any(kw.values()):
        raise UserError("gdown source needs an 'id' (or 'url')")
    try:
        gdown.download(output=str(part), quiet=True, resume=True, **kw)
    except FileURLRetrievalError as err:
        msg = str(err)
        if "too many users" in msg.lower() or "quota" in msg.lower():
            raise UserError(f"{_describe(source)}: Google Drive refused the file (download quota exceeded). "
                            "Retry in ~24 h, or fetch it in a browser and pass it with --mirror") from None
        raise UserError(f"{_describe(source)}: Google Drive refused the download: "
                        f"{' '.join(msg.split())[:300]}") from None
    except (DownloadError, OSError) as err:   # requests' errors are OSErrors too
        raise UserError(f"{_describe(source)}: download failed ({' '.join(str(err).split())[:300]}); "
                        "run again to resume, or pass a local copy with --mirror") from None
    if not part.exists():
        raise UserError(f"{_describe(source)}: gdown produced no file")


def fetch_hf(source: dict, part_dir: Path) -> None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    if not source.get("repo_id"):
        raise UserError("hf source needs a 'repo_id'")
    try:
        snapshot_download(source["repo_id"], repo_type=source.get("repo_type", "dataset"),
                          revision=source.get("revision"), allow_patterns=source.get("allow_patterns"),
                          local_dir=str(part_dir), endpoint=source.get("endpoint"))
    except RepositoryNotFoundError:
        raise UserError(f"{_describe(source)}: repository not found (or private)") from None
    except LocalEntryNotFoundError as err:
        raise UserError(f"{_describe(source)}: the hub cannot be reached ({' '.join(str(err).split())[:200]}); "
                        "pass a local snapshot with --mirror") from None
    except HfHubHTTPError as err:
        raise UserError(f"{_describe(source)}: hub error ({' '.join(str(err).split())[:200]})") from None
    except OSError as err:
        raise UserError(f"{_describe(source)}: cannot connect ({err}); pass a local snapshot with --mirror") from None


def _pack_zip(folder: Path, out: Path) -> None:
    """Deterministic zip of ``folder`` (sorted members, fixed timestamps), top folder kept."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                info = zipfile.ZipInfo(f"{folder.name}/{p.relative_to(folder).as_posix()}", (1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                with open(p, "rb") as fh:
                    zf.writestr(info, fh.read())


def from_mirror(source: dict, mirror: Path, staging: Path, dest: Path) -> None:
    """Stage the resource from a local mirror (file or folder) instead of the network."""
    if not mirror.exists():
        raise UserError(f"mirror {mirror} does not exist")
    if source.get("kind") == "hf":
        if not mirror.is_dir():
            raise UserError(f"mirror {mirror} for {_describe(source)} must be a folder (a hub snapshot)")
        patterns = source.get("allow_patterns")
        if isinstance(patterns, str):
            patterns = [patterns]
        staging.mkdir(parents=True)
        n = 0
        for p in sorted(mirror.rglob("*")):
            rel = p.relative_to(mirror).as_posix()
            if not p.is_file() or rel.startswith(".cache/"):
                continue
            if patterns and not any(fnmatch.fnmatch(rel, pat) for pat in patterns):
                continue
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, staging / rel)
            n += 1
        log.info("copied %d files from mirror %s", n, mirror)
        return
    if mirror.is_file():
        shutil.copyfile(mirror, staging)
    elif (mirror / dest.name).is_file():
        shutil.copyfile(mirror / dest.name, staging)
    elif dest.suffix == ".zip":
        log.info("packing mirror folder %s into %s", mirror, dest.name)
        _pack_zip(mirror, staging)
    else:
        raise UserError(f"mirror folder {mirror} has no file named {dest.name}")


# --------------------------------------------------------------------------- entry point
def _verify_existing(dest: Path, source: dict, what: str) -> Path:
    side = sidecar_path(dest)
    actual = manifest(dest)
    if side.exists():
        expected = read_sidecar(side)
        if expected != actual:
            bad = sorted(n for n in set(expected) | set(actual) if expected.get(n) != actual.get(n))
            raise UserError(f"{dest}: checksum mismatch with {side.name} for {', '.join(bad[:5])}: the file "
                            "changed or is corrupt; delete it (and the .sha256) to download again")
        log.info("%s: present, checksum verified", dest)
        return dest
    # present but never recorded (copied in by hand): check it like a fresh download
    check_tree(dest, what)
    _check_pinned(dest, source, actual, what)
    write_sidecar(side, actual)
    return dest


def _check_pinned(path: Path, source: dict, entries: dict[str, str], what: str) -> None:
    pinned = source.get("sha256")
    if pinned and path.is_file():
        got = next(iter(entries.values()))
        if got != pinned.lower():
            raise UserError(f"{what}: sha256 {got} differs from the pinned {pinned}: wrong or corrupt file")


def download(source: dict, dest, mirror=None) -> Path:
    """Fetch ``source`` into ``dest`` (a file; a folder for hub sources) and return ``dest``."""
    if not isinstance(source, dict) or source.get("kind") not in KINDS:
        raise UserError(f"source must be a dict with kind one of {', '.join(KINDS)}, got {source!r}")
    dest = Path(dest)
    what = _describe(source) if mirror is None else f"{_describe(source)} (mirror {mirror})"
    if dest.exists():
        return _verify_existing(dest, source, what)
    dest.parent.mkdir(parents=True, exist_ok=True)
    is_dir = source["kind"] == "hf"
    staging = dest.with_name(dest.name + ".part")
    t0 = time.time()
    if mirror is not None:
        if staging.exists():
            shutil.rmtree(staging) if staging.is_dir() else staging.unlink()
        from_mirror(source, Path(mirror), staging, dest)
    elif source["kind"] == "http":
        if not source.get("url"):
            raise UserError("http source needs a 'url'")
        fetch_http(source["url"], staging)
    elif source["kind"] == "gdown":
        fetch_gdown(source, staging)
    else:
        fetch_hf(source, staging)
    try:
        check_tree(staging, what)
        entries = manifest(staging, dest.name)
        _check_pinned(staging, source, entries, what)
    except UserError:
        # content is wrong, not merely incomplete: a resume would only extend garbage
        shutil.rmtree(staging, ignore_errors=True) if staging.is_dir() else staging.unlink(missing_ok=True)
        raise
    if is_dir:
        shutil.rmtree(staging / ".cache", ignore_errors=True)
    os.replace(staging, dest)
    write_sidecar(sidecar_path(dest), entries)
    log.info("downloaded %s -> %s (%d file(s), %.1f s)", what, dest, len(entries), time.time() - t0)
    return dest
