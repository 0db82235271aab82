"""Downloads against a local HTTP server on 127.0.0.1 (in-process, bounded in time): a
GUE-layout zip, a truncated zip, HTML error/quota pages, 404, a transfer that breaks off
and resumes, checksum sidecars, pinned checksums, local mirrors, the gdown and hub paths.
The payloads are synthetic files in the real formats, written by the tests."""
from __future__ import annotations

import gzip
import hashlib
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import dnatok.cli
import dnatok.data.download as dl
from dnatok.data.download import download, read_sidecar
from dnatok.data.genomic_benchmarks import download_dataset
from dnatok.errors import UserError

from synthetic import HUMAN_97, genome_like, intervals, write_csv_task, write_fasta, write_gb_dataset

QUOTA_PAGE = (b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>"
              b"<p>Too many users have viewed or downloaded this file recently. Please try accessing the file "
              b"again later.</p></body></html>")
ERROR_PAGE = b"<html><head><title>Sign in</title></head><body>Please sign in</body></html>"


class Handler(BaseHTTPRequestHandler):
    """Serves ``server.routes[path] = (body, content_type, options)``; honours Range
    unless ``no_range``; ``cut_once`` sends half the body then drops the connection
    (once)."""

    def do_GET(self):
        srv = self.server
        srv.log.append((self.path, self.headers.get("Range")))
        if self.path not in srv.routes:
            self.send_error(404, "Not Found")
            return
        body, ctype, opts = srv.routes[self.path]
        start = 0
        rng = self.headers.get("Range")
        if rng and not opts.get("no_range"):
            start = int(rng.split("=", 1)[1].split("-", 1)[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if opts.get("cut_once") and not opts.get("_cut_done"):
            opts["_cut_done"] = True
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.routes, srv.log = {}, []
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def short_timeouts(monkeypatch):
    monkeypatch.setattr(dl, "TIMEOUT_S", 5)


@pytest.fixture(scope="module")
def syn_task(tmp_path_factory) -> Path:
    """A synthetic prom_core_tata-like task folder (about 40 kB of CSV)."""
    return write_csv_task(tmp_path_factory.mktemp("t") / "prom_core_tata",
                          {"train": 400, "dev": 60, "test": 60}, length=70, seed=11)


@pytest.fixture(scope="module")
def zip_bytes(syn_task, tmp_path_factory) -> bytes:
    """A GUE-layout zip of one task (tens of kB), as the published GUE.zip nests it."""
    path = tmp_path_factory.mktemp("z") / "GUE.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for split in ("train", "dev", "test"):
            zf.write(syn_task / f"{split}.csv", f"GUE/prom/prom_core_tata/{split}.csv")
    return path.read_bytes()


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_http_zip_sidecar_and_reverify(server, zip_bytes, tmp_path):
    server.routes["/GUE.zip"] = (zip_bytes, "application/zip", {})
    dest = tmp_path / "res" / "GUE.zip"
    assert download({"kind": "http", "url": server.url + "/GUE.zip", "filename": "GUE.zip"}, dest) == dest
    assert dest.read_bytes() == zip_bytes
    side = tmp_path / "res" / "GUE.zip.sha256"
    assert read_sidecar(side) == {"GUE.zip": sha(zip_bytes)}
    assert not (tmp_path / "res" / "GUE.zip.part").exists()
    # second call: no request, checksum verified against the sidecar
    n = len(server.log)
    download({"kind": "http", "url": server.url + "/GUE.zip"}, dest)
    assert len(server.log) == n
    # a changed file is caught
    flipped = bytearray(zip_bytes)
    flipped[100] ^= 0xFF
    dest.write_bytes(bytes(flipped))
    with pytest.raises(UserError, match="checksum mismatch"):
        download({"kind": "http", "url": server.url + "/GUE.zip"}, dest)


def test_http_resumes_a_broken_transfer(server, zip_bytes, tmp_path):
    server.routes["/GUE.zip"] = (zip_bytes, "application/zip", {"cut_once": True})
    dest = tmp_path / "GUE.zip"
    src = {"kind": "http", "url": server.url + "/GUE.zip"}
    with pytest.raises(UserError, match="broke off.*run again to resume"):
        download(src, dest)
    part = tmp_path / "GUE.zip.part"
    assert not dest.exists() and 0 < part.stat().st_size < len(zip_bytes)
    have = part.stat().st_size
    download(src, dest)
    assert dest.read_bytes() == zip_bytes
    assert server.log[-1] == ("/GUE.zip", f"bytes={have}-")


def test_http_without_range_support_restarts(server, zip_bytes, tmp_path):
    server.routes["/GUE.zip"] = (zip_bytes, "application/zip", {"no_range": True})
    (tmp_path / "GUE.zip.part").write_bytes(b"garbage that is not a prefix")
    download({"kind": "http", "url": server.url + "/GUE.zip"}, tmp_path / "GUE.zip")
    assert (tmp_path / "GUE.zip").read_bytes() == zip_bytes


@pytest.mark.parametrize("body,ctype,words", [
    (QUOTA_PAGE, "text/html", "quota exceeded"),
    (ERROR_PAGE, "text/html", "HTML page instead of the file (page title: 'sign in')"),
    (None, "application/zip", "not a readable zip archive"),
    (b"", "application/zip", "empty"),
])
def test_http_bad_payloads_are_refused_and_removed(server, zip_bytes, tmp_path, body, ctype, words):
    body = zip_bytes[: len(zip_bytes) * 2 // 3] if body is None else body   # truncated zip
    server.routes["/GUE.zip"] = (body, ctype, {})
    dest = tmp_path / "GUE.zip"
    with pytest.raises(UserError, match=words.replace("(", r"\(").replace(")", r"\)")):
        download({"kind": "http", "url": server.url + "/GUE.zip"}, dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_http_404_and_unreachable(server, tmp_path):
    with pytest.raises(UserError, match=r"not found \(HTTP 404\)"):
        download({"kind": "http", "url": server.url + "/missing.zip"}, tmp_path / "m.zip")
    with pytest.raises(UserError, match="cannot connect.*--mirror"):
        download({"kind": "http", "url": "http://127.0.0.1:9/x.zip"}, tmp_path / "x.zip")
    assert list(tmp_path.iterdir()) == []


def test_gzip_truncation_and_pinned_checksum(server, tmp_path):
    fa = write_fasta(tmp_path / "src" / "g.fa.gz", {"chr2": genome_like(2, 300_000, n_prefix=1000)},
                     compress="bgzip")
    genome = fa.read_bytes()
    server.routes["/g.fa.gz"] = (genome[: len(genome) // 2], "application/gzip", {})
    with pytest.raises(UserError, match="gzip stream is truncated"):
        download({"kind": "http", "url": server.url + "/g.fa.gz"}, tmp_path / "g.fa.gz")
    server.routes["/g.fa.gz"] = (genome, "application/gzip", {})
    with pytest.raises(UserError, match="differs from the pinned"):
        download({"kind": "http", "url": server.url + "/g.fa.gz", "sha256": "0" * 64}, tmp_path / "g.fa.gz")
    assert not (tmp_path / "g.fa.gz").exists()
    download({"kind": "http", "url": server.url + "/g.fa.gz", "sha256": sha(genome)}, tmp_path / "g.fa.gz")
    assert gzip.decompress((tmp_path / "g.fa.gz").read_bytes()).startswith(b">chr2\nNNNN")


def test_mirror_file_folder_and_packed_folder(zip_bytes, syn_task, tmp_path):
    src = {"kind": "gdown", "id": "not-used-offline", "filename": "GUE.zip"}
    m = tmp_path / "mirror"
    m.mkdir()
    (m / "GUE.zip").write_bytes(zip_bytes)
    # a mirror file, and a mirror folder holding a file of the destination's name
    download(src, tmp_path / "a" / "GUE.zip", mirror=m / "GUE.zip")
    download(src, tmp_path / "b" / "GUE.zip", mirror=m)
    assert (tmp_path / "a/GUE.zip").read_bytes() == (tmp_path / "b/GUE.zip").read_bytes() == zip_bytes
    # a mirror that is an extracted archive: packed into a deterministic zip
    ext = tmp_path / "extracted" / "GUE"
    with zipfile.ZipFile(m / "GUE.zip") as zf:
        zf.extractall(ext.parent)
    download(src, tmp_path / "c" / "GUE.zip", mirror=ext)
    download(src, tmp_path / "d" / "GUE.zip", mirror=ext)
    c = (tmp_path / "c/GUE.zip").read_bytes()
    assert c == (tmp_path / "d/GUE.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "c/GUE.zip") as zf:
        assert zf.read("GUE/prom/prom_core_tata/train.csv") == (syn_task / "train.csv").read_bytes()
    # mirrors go through the same checks
    (m / "bad.zip").write_bytes(QUOTA_PAGE)
    with pytest.raises(UserError, match=r"quota exceeded.*mirror"):
        download(src, tmp_path / "e" / "GUE.zip", mirror=m / "bad.zip")
    with pytest.raises(UserError, match="has no file named x.bed"):
        download({"kind": "http", "url": "http://127.0.0.1:9/x.bed"}, tmp_path / "x.bed", mirror=m)
    with pytest.raises(UserError, match="does not exist"):
        download(src, tmp_path / "f" / "GUE.zip", mirror=tmp_path / "nope")


def test_hub_snapshot_mirror_with_patterns(tmp_path):
    snap = tmp_path / "snapshot"
    for task in ("promoter_all", "H3K4me3"):
        (snap / task).mkdir(parents=True)
        (snap / task / "train.parquet").write_bytes(b"PAR1" + task.encode() * 3 + b"PAR1")
        (snap / task / "train.fna").write_text(">x|0\nACGT\n")
    (snap / ".cache").mkdir()
    (snap / ".cache" / "junk").write_text("hub bookkeeping")
    src = {"kind": "hf", "repo_id": "InstaDeepAI/nucleotide_transformer_downstream_tasks_revised",
           "repo_type": "dataset", "allow_patterns": ["promoter_*/*.parquet"]}
    dest = download(src, tmp_path / "hub", mirror=snap)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == \
        ["promoter_all/train.parquet"]
    assert list(read_sidecar(tmp_path / "hub.sha256")) == ["hub/promoter_all/train.parquet"]
    download(src, dest)                                    # verified from the sidecar
    (dest / "promoter_all" / "train.parquet").write_bytes(b"PAR1PAR1")
    with pytest.raises(UserError, match="checksum mismatch"):
        download(src, dest)
    # a truncated parquet file in a snapshot is refused
    (snap / "promoter_all" / "test.parquet").write_bytes(b"PAR1 cut")
    with pytest.raises(UserError, match="not a complete parquet"):
        download(src, tmp_path / "hub2", mirror=snap)
    with pytest.raises(UserError, match="no file matched"):
        download({**src, "allow_patterns": ["nothing/*"]}, tmp_path / "hub3", mirror=snap)


def test_hub_errors_are_clear(server, tmp_path):
    """A hub endpoint that answers 404 (a mirror without the repo) -> one clear line."""
    src = {"kind": "hf", "repo_id": "someone/absent", "repo_type": "dataset", "endpoint": server.url}
    with pytest.raises(UserError, match="someone/absent"):
        download(src, tmp_path / "hub")
    assert not (tmp_path / "hub").exists()


def test_gdown_path_against_local_server(server, zip_bytes, tmp_path):
    pytest.importorskip("gdown")
    server.routes["/GUE.zip"] = (zip_bytes, "application/zip", {})
    server.routes["/quota"] = (QUOTA_PAGE, "text/html", {})
    dest = download({"kind": "gdown", "url": server.url + "/GUE.zip"}, tmp_path / "GUE.zip")
    assert dest.read_bytes() == zip_bytes
    with pytest.raises(UserError, match="quota exceeded"):
        download({"kind": "gdown", "url": server.url + "/quota"}, tmp_path / "q.zip")
    assert not (tmp_path / "q.zip").exists()


def test_gdown_refusal_is_translated(monkeypatch, tmp_path):
    import gdown
    from gdown.exceptions import FileURLRetrievalError

    def refuse(**kw):
        raise FileURLRetrievalError("Failed to retrieve file url:\n\n\tToo many users have viewed or downloaded "
                                    "this file recently. Please try accessing the file again later.")
    monkeypatch.setattr(gdown, "download", refuse)
    with pytest.raises(UserError, match=r"Google Drive 1GRt.*quota exceeded.*--mirror"):
        download({"kind": "gdown", "id": "1GRtbzTe3UXYF1oW27ASNhYX3SZ16D7N2"}, tmp_path / "GUE.zip")


def test_bad_source_descriptions(tmp_path):
    with pytest.raises(UserError, match="kind one of"):
        download({"kind": "ftp", "url": "x"}, tmp_path / "x")
    with pytest.raises(UserError, match="needs a 'url'"):
        download({"kind": "http"}, tmp_path / "x")


def test_gb_interval_lists_over_http(server, tmp_path):
    datasets = tmp_path / "datasets"
    gb = write_gb_dataset(datasets / "human_nontata_promoters", {"negative": HUMAN_97, "positive": HUMAN_97},
                          {split: {cls: intervals(i, 20, "chr8", 0, 10**6, 251, prefix=f"{cls[0]}{split}")
                                   for i, cls in enumerate(("negative", "positive"))} for split in ("train", "test")})
    for p in gb.rglob("*"):
        if p.is_file():
            server.routes[f"/datasets/human_nontata_promoters/{p.relative_to(gb).as_posix()}"] = \
                (p.read_bytes(), "application/octet-stream", {})
    out = download_dataset("human_nontata_promoters", tmp_path / "gb" / "human_nontata_promoters",
                           base_url=server.url + "/datasets")
    got = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.suffix != ".sha256")
    assert got == ["metadata.yaml", "test/negative.csv.gz", "test/positive.csv.gz",
                   "train/negative.csv.gz", "train/positive.csv.gz"]
    for rel in got:
        assert (out / rel).read_bytes() == (gb / rel).read_bytes()
    # and from a local datasets/ mirror, no network
    m = download_dataset("human_nontata_promoters", tmp_path / "gb2", base_url="http://127.0.0.1:9",
                         mirror=datasets)
    assert (m / "train/positive.csv.gz").read_bytes() == (gb / "train/positive.csv.gz").read_bytes()


def test_cli_download(server, zip_bytes, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dnatok.cli, "AREAS", ("dnatok.data.cli",))
    server.routes["/GUE.zip"] = (zip_bytes, "application/zip", {})
    src = tmp_path / "src.json"
    src.write_text(json.dumps({"kind": "http", "url": server.url + "/GUE.zip"}))
    assert dnatok.cli.main(["data", "download", "--source", str(src), "--dest", str(tmp_path / "o" / "GUE.zip")]) == 0
    assert Path(capsys.readouterr().out.strip()) == tmp_path / "o" / "GUE.zip"
    assert dnatok.cli.main(["data", "download", "--source", json.dumps({"kind": "http", "url": server.url + "/no"}),
                            "--dest", str(tmp_path / "n.zip")]) == 2
    assert "HTTP 404" in capsys.readouterr().err
    assert dnatok.cli.main(["data", "download", "--source", "{not json", "--dest", str(tmp_path / "n")]) == 2
    assert "invalid JSON" in capsys.readouterr().err
