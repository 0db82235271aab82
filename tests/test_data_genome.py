"""Reference sequences: opening (bgzip, gzip, plain), naming conventions, the pretraining
interval extraction, random windows, and Genomic Benchmarks intervals cut from a reference.

The logic runs on a synthetic 400 kb "chr2" (bgzip, soft-masked, with a leading N run)
and synthetic Genomic Benchmarks folders written by the tests; the facts of the real
hg38 chr2 piece (643 intervals of 7 human datasets fall inside it, row counts, strand
counts, promoter CpG content) are checked on ../shared."""
from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import pytest

import dnatok.cli
import dnatok.data.genome as genome_mod
from dnatok.data.genome import (RegionResolver, compression, extract_intervals, open_fasta, reverse_complement,
                                sample_windows)
from dnatok.data.genomic_benchmarks import GBDataset, iter_intervals, prepare_gb_task, reference_filename
from dnatok.data.validate import check_task_dir
from dnatok.errors import DataError, UserError
from dnatok.registry import TASKS

from synthetic import HUMAN_97, HUMAN_100, WORM_104, genome_like, intervals, write_fasta, write_gb_dataset

PIECE = "data/genome/hg38_chr2_1-2333275.fa.gz"
PIECE_LEN = 2_333_275
HUMAN_GB = ["demo_coding_vs_intergenomic_seqs", "demo_human_or_worm", "human_enhancers_cohn",
            "human_enhancers_ensembl", "human_ensembl_regulatory", "human_nontata_promoters", "human_ocr_ensembl"]
SYN_LEN = 400_000        # the synthetic chr2
SYN_GAP = 2_000          # its leading N run


# --------------------------------------------------------------------------- synthetic reference
@pytest.fixture(scope="module")
def syn_text() -> str:
    """The synthetic chr2 as written (soft-masked: lower-case runs)."""
    return genome_like(20, SYN_LEN, n_prefix=SYN_GAP, n_gaps=2, soft_mask=True)


@pytest.fixture(scope="module")
def chr2_text(syn_text) -> str:
    """The synthetic chr2 upper-cased, the ground truth for slicing."""
    return syn_text.upper()


@pytest.fixture(scope="module")
def genome(syn_text, tmp_path_factory) -> Path:
    """The synthetic chr2 as a bgzipped UCSC-style FASTA in a writable folder."""
    return write_fasta(tmp_path_factory.mktemp("genome") / "syn_piece.fa.gz", {"chr2": syn_text},
                       compress="bgzip")


@pytest.fixture(scope="module")
def ensembl_named(chr2_text, tmp_path_factory) -> Path:
    """The same sequence as a plain-gzip FASTA with Ensembl naming (``>2 dna:chromosome``)."""
    head = f"2 dna:chromosome chromosome:GRCh38:2:1:{SYN_LEN}:1 REF"
    return write_fasta(tmp_path_factory.mktemp("ens") / "Homo_sapiens.piece.dna.fa.gz", {head: chr2_text},
                       compress="gzip")


# Synthetic Genomic Benchmarks datasets on the synthetic chr2. Per dataset: class URLs and,
# per split and class, interval rows; what prepare must keep or drop is known by construction.
def _gb_plan() -> dict:
    inside = lambda seed, n, L, strands="+-", p="i": intervals(seed, n, "chr2", SYN_GAP, SYN_LEN, L,  # noqa: E731
                                                               strands, prefix=p)
    past_end = [("end0", "chr2", SYN_LEN - 200, SYN_LEN + 300, "+")]
    return {
        "human_nontata_promoters": (
            {"negative": HUMAN_97, "positive": HUMAN_97},
            {"train": {"negative": inside(1, 6, 251), "positive": inside(2, 7, 251)},
             "test": {"negative": inside(3, 3, 251), "positive": inside(4, 4, 251)}}),
        # Ensembl-style lists: empty strand (= +), regions on another chromosome too
        "human_ocr_ensembl": (
            {"negative": HUMAN_100, "positive": HUMAN_100},
            {"train": {"negative": inside(5, 5, (200, 593), "") + intervals(6, 3, "chr5", 0, 10**6, 300, ""),
                       "positive": inside(7, 6, (200, 593), "")},
             "test": {"negative": inside(8, 2, 300, ""), "positive": inside(9, 2, 300, "")}}),
        # the first interval is on chr16 (not in the piece); one runs past chr2's end
        "human_enhancers_cohn": (
            {"negative": HUMAN_97, "positive": HUMAN_97},
            {"train": {"negative": [("n0", "chr16", 100, 600, "+")] + inside(10, 4, 500, p="n"),
                       "positive": inside(11, 5, 500, p="p") + past_end},
             "test": {"negative": inside(12, 2, 500) + [("x", "chr8", 0, 500, "+")],
                      "positive": inside(13, 2, 500)}}),
        "demo_human_or_worm": (
            {"human": HUMAN_97, "worm": WORM_104},
            {"train": {"human": inside(14, 4, 200), "worm": intervals(15, 4, "I", 10, 10**6, 200)},
             "test": {"human": inside(16, 2, 200), "worm": intervals(17, 2, "I", 10, 10**6, 200)}}),
    }


@pytest.fixture(scope="module")
def gb_root(tmp_path_factory) -> Path:
    """A ``datasets/`` folder of synthetic Genomic Benchmarks datasets."""
    root = tmp_path_factory.mktemp("gb") / "datasets"
    for name, (urls, rows) in _gb_plan().items():
        write_gb_dataset(root / name, urls, rows)
    return root


# --------------------------------------------------------------------------- real reference (../shared)
@pytest.fixture(scope="session")
def real_genome(shared_dir, tmp_path_factory) -> Path:
    """The bgzipped chr2 piece copied to a writable temp folder (its index goes beside it)."""
    d = tmp_path_factory.mktemp("genome")
    shutil.copy(shared_dir / PIECE, d / "hg38_piece.fa.gz")
    return d / "hg38_piece.fa.gz"


@pytest.fixture(scope="session")
def real_chr2_text(real_genome) -> str:
    """The whole piece as one upper-case string (2.3 Mb), the ground truth for slicing."""
    with gzip.open(real_genome, "rt") as fh:
        lines = fh.read().split("\n")
    assert lines[0] == ">chr2"
    return "".join(lines[1:]).upper()


def gb_dir(shared_dir, name) -> Path:
    return shared_dir / "data" / "genomic_benchmarks" / name


# --------------------------------------------------------------------------- genome
def test_open_bgzip_and_slices_match_the_text(genome, syn_text, chr2_text):
    assert compression(genome) == "bgzip"
    fa = open_fasta(genome)
    assert list(fa.keys()) == ["chr2"] and len(fa["chr2"]) == SYN_LEN
    assert (genome.parent / "syn_piece.fa.gz.fai").exists() and (genome.parent / "syn_piece.fa.gz.gzi").exists()
    # across BGZF block boundaries (64 kB of text each) and at both ends
    for start in (0, SYN_GAP - 1, SYN_GAP, 65_000, 131_000, 250_000, SYN_LEN - 500):
        assert fa["chr2"][start:start + 500] == chr2_text[start:start + 500]
    assert chr2_text[:SYN_GAP] == "N" * SYN_GAP and chr2_text[SYN_GAP] != "N"
    # soft-masked (lower-case) input comes back upper-case
    low = next(i for i, c in enumerate(syn_text) if c.islower())
    assert fa["chr2"][low:low + 50] == syn_text[low:low + 50].upper() != syn_text[low:low + 50]


def test_real_piece_opens_with_the_telomere_gap(real_genome, real_chr2_text):
    assert compression(real_genome) == "bgzip"
    fa = open_fasta(real_genome)
    assert list(fa.keys()) == ["chr2"] and len(fa["chr2"]) == PIECE_LEN
    for start in (0, 9_999, 10_000, 1_000_000, PIECE_LEN - 500):
        assert fa["chr2"][start:start + 500] == real_chr2_text[start:start + 500]
    assert real_chr2_text[:10_000] == "N" * 10_000             # the piece opens with the telomere gap


def test_read_only_folder_is_never_written(syn_text, tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    path = write_fasta(ro / "g.fa.gz", {"chr2": syn_text}, compress="bgzip")
    ro.chmod(0o555)                                     # no write bit, like ../shared
    try:
        before = sorted(os.listdir(ro))
        monkeypatch.setenv("DNATOK_CACHE", str(tmp_path / "cache"))
        fa = open_fasta(path)                           # index goes to the cache
        assert len(fa["chr2"]) == SYN_LEN
        assert sorted(os.listdir(ro)) == before == ["g.fa.gz"]
        assert list((tmp_path / "cache").rglob("*.fai")) and list((tmp_path / "cache").rglob("*.gzi"))
        fa2 = open_fasta(path, index_dir=tmp_path / "idx")
        assert (tmp_path / "idx" / "g.fa.gz.fai").is_file()
        assert fa2["chr2"][50_000:50_100] == fa["chr2"][50_000:50_100] == syn_text[50_000:50_100].upper()
        assert sorted(os.listdir(ro)) == before
    finally:
        ro.chmod(0o755)


def test_read_only_inputs_are_never_written(shared_dir, tmp_path, monkeypatch):
    before = sorted(os.listdir(shared_dir / "data" / "genome"))
    monkeypatch.setenv("DNATOK_CACHE", str(tmp_path / "cache"))
    fa = open_fasta(shared_dir / PIECE)                  # index goes to the cache, not ../shared
    assert len(fa["chr2"]) == PIECE_LEN
    assert sorted(os.listdir(shared_dir / "data" / "genome")) == before
    assert list((tmp_path / "cache").rglob("*.fai"))
    fa2 = open_fasta(shared_dir / PIECE, index_dir=tmp_path / "idx")
    assert fa2["chr2"][50_000:50_100] == fa["chr2"][50_000:50_100]
    assert sorted(os.listdir(shared_dir / "data" / "genome")) == before


def test_plain_gzip_and_missing_biopython_fall_back_to_a_copy(genome, ensembl_named, chr2_text, tmp_path,
                                                               monkeypatch):
    assert compression(ensembl_named) == "gzip"
    fa = open_fasta(ensembl_named, index_dir=tmp_path / "ens")
    assert list(fa.keys()) == ["2"] and fa["2"][123_456:123_556] == chr2_text[123_456:123_556]
    assert (tmp_path / "ens" / "Homo_sapiens.piece.dna.fa").is_file()
    monkeypatch.setattr(genome_mod, "_have_biopython", lambda: False)
    fa = open_fasta(genome, index_dir=tmp_path / "nobio")
    assert fa["chr2"][200_000:200_050] == chr2_text[200_000:200_050]
    assert (tmp_path / "nobio" / "syn_piece.fa").is_file()


def test_region_names_across_conventions(genome, ensembl_named, tmp_path):
    ucsc = RegionResolver(open_fasta(genome))
    ens = RegionResolver(open_fasta(ensembl_named, index_dir=tmp_path))
    assert ucsc.resolve("chr2") == "chr2" and ucsc.resolve("2") == "chr2"
    assert ens.resolve("chr2") == "2" and ens.resolve("2") == "2"
    assert ucsc.resolve("chr3") is None and ens.resolve("chrMT") is None
    fa = tmp_path / "tx.fa"
    fa.write_text(">ENST00000217185.6 cdna chromosome:GRCh38:1:1:10:1\nACGTACGTAC\n>MT\nGATC\n")
    tx = RegionResolver(open_fasta(fa))
    assert tx.resolve("ENST00000217185") == "ENST00000217185.6"
    assert tx.resolve("chrMT") == "MT" and tx.resolve("chrM") == "MT"


def test_reverse_complement():
    assert reverse_complement("AACGTN") == "NACGTT"
    assert reverse_complement("ACGTRYKMSWBDHVN") == "NBDHVWSKMRYACGT"
    assert reverse_complement(reverse_complement("GATTACAnnRY")) == "GATTACAnnRY"


def write_bed(path: Path, rows) -> Path:
    path.write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


def test_extract_intervals_per_split(genome, chr2_text, tmp_path):
    rows = [("chr2", 1_000, 132_072, "train"), ("chr2", 140_000, 271_072, "valid"),
            ("chr2", 268_000, 399_072, "train"), ("chr2", 300_000, 340_000, "test")]
    bed = write_bed(tmp_path / "sequences_human.bed", rows)
    out = tmp_path / "pretrain" / "train.fa"
    summary = extract_intervals(genome, bed, "train", out)
    assert summary["intervals"] == 2 and summary["bp"] == 2 * 131_072
    # the first interval starts inside the leading N run: 1,000 of its bases are N
    assert summary["n_fraction"] == pytest.approx((SYN_GAP - 1_000 + chr2_text[SYN_GAP:132_072].count("N")
                                                   + chr2_text[268_000:399_072].count("N")) / (2 * 131_072),
                                                  abs=1e-6)
    assert (tmp_path / "pretrain" / "train.fa.fai").exists()
    fa = open_fasta(out)
    assert list(fa.keys()) == ["chr2:1000-132072", "chr2:268000-399072"]
    assert fa["chr2:268000-399072"][:] == chr2_text[268_000:399_072]
    assert fa["chr2:1000-132072"][:] == chr2_text[1_000:132_072]
    assert all(len(ln) <= 80 for ln in out.read_text().splitlines())
    assert extract_intervals(genome, bed, "test", tmp_path / "test.fa")["intervals"] == 1


@pytest.mark.parametrize("rows,words,line", [
    ([("chr2", 0, 100, "train"), ("chr7", 0, 100, "train")], "chromosome 'chr7' is not in", 2),
    ([("chr2", SYN_LEN - 10, SYN_LEN + 10, "train")], "extends past the end of chr2", 1),
    ([("chr2", 100, 50, "train")], "invalid interval", 1),
    ([("chr2", "x", 50, "train")], "not integers", 1),
    ([("chr2", 0, 50)], "expected 4 columns", 1),
])
def test_extract_intervals_errors(genome, tmp_path, rows, words, line):
    bed = write_bed(tmp_path / "b.bed", rows)
    with pytest.raises(DataError) as err:
        extract_intervals(genome, bed, "train", tmp_path / "o.fa")
    assert words in err.value.problem and err.value.line == line and err.value.path == str(bed)
    assert not (tmp_path / "o.fa").exists()


def test_extract_intervals_split_errors(genome, tmp_path, monkeypatch, capsys):
    bed = write_bed(tmp_path / "b.bed", [("chr2", 0, 100, "train")])
    with pytest.raises(UserError, match=r"no intervals with split 'test' \(splits present: train\)"):
        extract_intervals(genome, bed, "test", tmp_path / "o.fa")
    with pytest.raises(UserError, match="split must be one of"):
        extract_intervals(genome, bed, "validation", tmp_path / "o.fa")
    monkeypatch.setattr(dnatok.cli, "AREAS", ("dnatok.data.cli",))
    assert dnatok.cli.main(["data", "extract", "--genome", str(genome), "--bed", str(bed), "--split", "train",
                            "--out", str(tmp_path / "cli.fa")]) == 0
    assert json.loads(capsys.readouterr().out)["bp"] == 100


def test_sample_windows_deterministic_and_uniform(genome):
    fa = open_fasta(genome)
    a = sample_windows(fa, 200, 1024, seed=7)
    assert a == sample_windows(genome, 200, 1024, seed=7)
    assert a != sample_windows(fa, 200, 1024, seed=8)
    assert all(len(w) == 1024 and set(w) <= set("ACGTN") for w in a)
    clean = sample_windows(fa, 300, 2048, seed=1, max_n_frac=0.0)
    assert all("N" not in w for w in clean)
    # windows land across the whole sequence: the leading 2 kb N run (0.5%) gets few of them
    many = sample_windows(fa, 2000, 100, seed=3)
    assert sum(w == "N" * 100 for w in many) < 40
    with pytest.raises(UserError, match="at least 5000000 bp"):
        sample_windows(fa, 1, 5_000_000, seed=0)


def test_sample_windows_gives_up_on_a_gap_genome(tmp_path):
    fa = tmp_path / "gap.fa"
    fa.write_text(">g\n" + "N" * 5000 + "\n")
    with pytest.raises(UserError, match="mostly gaps"):
        sample_windows(fa, 5, 100, seed=0, max_n_frac=0.1)


# --------------------------------------------------------------------------- Genomic Benchmarks
def _resolvers_for(ds, genome):
    r = RegionResolver(open_fasta(genome))
    return {c: r for c in ds.classes}


def _rows(folder: Path, split: str, cls: str) -> list[dict]:
    with gzip.open(folder / split / f"{cls}.csv.gz", "rt") as fh:
        return list(csv.DictReader(fh))


def test_intervals_are_cut_and_minus_strand_reverse_complemented(gb_root, genome, chr2_text):
    ds = GBDataset(gb_root / "human_nontata_promoters")
    assert ds.classes == ["negative", "positive"]
    strands = Counter()
    for split in ("train", "test"):
        rows = {f"{c}/{r['id']}": r for c in ds.classes for r in _rows(gb_root / "human_nontata_promoters", split, c)}
        got = list(iter_intervals(ds, split, _resolvers_for(ds, genome), Counter(), True))
        assert sorted(rid for *_, rid in got) == sorted(rows)
        for _w, _l, seq, label, rid in got:
            rec = rows[rid]
            plus = chr2_text[int(rec["start"]):int(rec["end"])]
            assert seq == (reverse_complement(plus) if rec["strand"] == "-" else plus)
            assert label == ds.classes.index(rid.split("/")[0]) and len(seq) == 251
            strands[rec["strand"]] += 1
    assert set(strands) == {"+", "-"} and sum(strands.values()) == 20


def test_bad_interval_rows_name_file_and_line(gb_root, genome, tmp_path):
    d = tmp_path / "human_nontata_promoters"
    shutil.copytree(gb_root / "human_nontata_promoters", d)
    ds = GBDataset(d)
    for bad, words in [("x,chr2,10,5,+", "invalid interval"), ("x,chr2,a,5,+", "not integers"),
                       ("x,chr2,10,50,*", "strand must be"), ("x,chr2,10", "expected 5 fields")]:
        with gzip.open(d / "test/positive.csv.gz", "rt") as fh:
            rows = fh.read().splitlines()
        rows[2] = bad
        with gzip.open(d / "test/positive.csv.gz", "wt") as fh:
            fh.write("\n".join(rows) + "\n")
        with pytest.raises(DataError) as err:
            list(iter_intervals(ds, "test", _resolvers_for(ds, genome), Counter(), True))
        assert words in err.value.problem and err.value.line == 3
        assert err.value.path == str(d / "test/positive.csv.gz")


def test_ensembl_named_reference_gives_identical_task(gb_root, genome, ensembl_named, tmp_path):
    task = TASKS["gb"]["human_ocr_ensembl"]
    a = prepare_gb_task(gb_root / task.source, genome, task, tmp_path / "a", allow_missing_regions=True)
    b = prepare_gb_task(gb_root / task.source, {"negative": ensembl_named, "positive": ensembl_named},
                        task, tmp_path / "b", allow_missing_regions=True, index_dir=tmp_path / "idx")
    assert a["files"] == b["files"] and a["files"]["train"]["rows"] == 11 and a["files"]["test"]["rows"] == 4
    assert a["dropped"]["total"] == 3 and a["dropped"]["by_reason"] == {"missing_region": 3}
    assert a["dropped"]["top_regions"] == {"chr5": 3}
    # empty strand = +: the sequences are the plain slices, ids <class>/<interval id>
    with open(tmp_path / "b" / "train.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows][:5] == [f"negative/i{k}" for k in range(5)]


def test_missing_regions_fail_by_default_naming_file_and_line(gb_root, genome, tmp_path):
    task = TASKS["gb"]["human_enhancers_cohn"]
    src = gb_root / task.source
    with pytest.raises(DataError) as err:
        prepare_gb_task(src, genome, task, tmp_path / "o")
    assert err.value.path == str(src / "train" / "negative.csv.gz") and err.value.line == 2
    assert "region 'chr16' is not in the reference (tried chr16, 16)" in err.value.problem
    assert not (tmp_path / "o").exists()
    # an interval on chr2 beyond the piece is its own error
    d = tmp_path / "one"
    shutil.copytree(src, d)
    for split in ("train", "test"):
        for cls in ("negative", "positive"):
            with gzip.open(d / split / f"{cls}.csv.gz", "rt") as fh:
                keep = [ln for i, ln in enumerate(fh) if i == 0 or ",chr2," in ln]
            with gzip.open(d / split / f"{cls}.csv.gz", "wt") as fh:
                fh.writelines(keep)
    with pytest.raises(DataError) as err:
        prepare_gb_task(d, genome, task, tmp_path / "o")
    assert "runs past the end of chr2" in err.value.problem and err.value.line == 7
    assert err.value.path == str(d / "train" / "positive.csv.gz")
    assert not (tmp_path / "o").exists()


def test_gb_from_a_zip_and_through_the_cli(gb_root, genome, tmp_path, monkeypatch, capsys):
    zpath = tmp_path / "genomic_benchmarks.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for name in ("human_enhancers_cohn", "human_ocr_ensembl"):
            for p in sorted((gb_root / name).rglob("*")):
                if p.is_file():
                    zf.write(p, f"genomic_benchmarks-605d853/datasets/{name}/{p.relative_to(gb_root / name)}")
    monkeypatch.setattr(dnatok.cli, "AREAS", ("dnatok.data.cli",))
    argv = ["data", "prepare", "--benchmark", "gb", "--task", "human_enhancers_cohn", "--source", str(zpath),
            "--reference", str(genome), "--out", str(tmp_path / "cohn")]
    assert dnatok.cli.main(argv) == 2
    assert "negative.csv.gz:2: region 'chr16'" in capsys.readouterr().err
    assert dnatok.cli.main(argv + ["--allow-missing-regions"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["files"]["train"]["rows"] == 9 and out["files"]["test"]["rows"] == 4
    assert out["dropped"]["total"] == 3
    assert out["dropped"]["by_reason"] == {"beyond_end": 1, "missing_region": 2}
    assert out["dropped"]["by_split_class"] == {"test/negative": 1, "train/negative": 1, "train/positive": 1}
    meta = json.loads((tmp_path / "cohn" / "task.json").read_text())
    assert meta["classes"] == ["negative", "positive"] and meta["dropped"]["by_reason"]["missing_region"] == 2
    assert meta["source_files"]["train"]["classes"]["negative"]["path"].startswith(f"{zpath}!")
    assert check_task_dir(tmp_path / "cohn")["splits"]["train"]["label_counts"] == {"0": 4, "1": 5}
    assert dnatok.cli.main(argv[:-4] + ["--out", str(tmp_path / "x")]) == 2
    assert "needs the reference FASTA" in capsys.readouterr().err


def test_reference_lookup_by_class_url_and_folder(gb_root, genome, tmp_path):
    task = TASKS["gb"]["demo_human_or_worm"]
    src = gb_root / task.source
    ds = GBDataset(src)
    assert reference_filename(ds.reference_url("human")) == "ensembl97_Homo_sapiens.GRCh38.dna.toplevel.fa.gz"
    assert reference_filename("https://example.org/refs/genome.fa.gz") == "genome.fa.gz"
    refs = tmp_path / "refs"
    refs.mkdir()
    with pytest.raises(UserError, match="no ensembl97_Homo_sapiens"):
        prepare_gb_task(src, refs, task, tmp_path / "o", allow_missing_regions=True)
    with pytest.raises(UserError, match="no reference given for class 'worm'"):
        prepare_gb_task(src, {"human": genome}, task, tmp_path / "o", allow_missing_regions=True)
    # only a scrap of the worm genome: every worm interval is dropped, so the class is
    # absent from train and the task is refused rather than written with one class
    shutil.copy(genome, refs / "ensembl97_Homo_sapiens.GRCh38.dna.toplevel.fa.gz")
    with pytest.raises(UserError, match=r"no ensembl104_Caenorhabditis"):
        prepare_gb_task(src, refs, task, tmp_path / "o", allow_missing_regions=True)
    worm = tmp_path / "worm.fa"
    worm.write_text(">I\nACGT\n")
    with pytest.raises(DataError, match=r"class\(es\) 1 \(worm\) never occur in train"):
        prepare_gb_task(src, {"human": genome, "worm": worm}, task, tmp_path / "o", allow_missing_regions=True)
    assert not (tmp_path / "o").exists()
    # a worm reference long enough for its intervals: both classes, keyed by URL this time
    worm_long = write_fasta(tmp_path / "worm_long.fa", {"I": genome_like(21, 10**6)})
    meta = prepare_gb_task(src, {HUMAN_97: genome, WORM_104: worm_long}, task, tmp_path / "o")
    assert meta["files"]["train"]["rows"] == 8 and meta["classes"] == ["human", "worm"]
    assert meta["references"] == {"human": str(genome), "worm": str(worm_long)}


def test_references_download_from_a_mirror_with_checksums(gb_root, genome, tmp_path, monkeypatch, capsys):
    """`dnatok data gb-references`: references named in metadata.yaml, fetched through
    `download` (here from a local mirror folder holding a file of the upstream name)."""
    src = gb_root
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(genome, mirror / "Homo_sapiens.GRCh38.dna.toplevel.fa.gz")
    monkeypatch.setattr(dnatok.cli, "AREAS", ("dnatok.data.cli",))
    dest = tmp_path / "refs"
    assert dnatok.cli.main(["data", "gb-references", "--source", str(src), "--task", "human_ocr_ensembl",
                            "--task", "human_enhancers_cohn", "--dest", str(dest), "--mirror", str(mirror)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["human_ocr_ensembl"] == {c: str(dest / "ensembl100_Homo_sapiens.GRCh38.dna.toplevel.fa.gz")
                                        for c in ("negative", "positive")}
    assert out["human_enhancers_cohn"]["positive"] == str(dest / "ensembl97_Homo_sapiens.GRCh38.dna.toplevel.fa.gz")
    assert (dest / "ensembl97_Homo_sapiens.GRCh38.dna.toplevel.fa.gz.sha256").is_file()
    assert (dest / "ensembl97_Homo_sapiens.GRCh38.dna.toplevel.fa.gz").read_bytes() == genome.read_bytes()
    # the folder then serves as --reference for prepare
    task = TASKS["gb"]["human_ocr_ensembl"]
    meta = prepare_gb_task(src / task.source, dest, task, tmp_path / "ocr", allow_missing_regions=True)
    assert meta["files"]["train"]["rows"] == 11
    # a dataset whose reference the mirror lacks fails clearly
    assert dnatok.cli.main(["data", "gb-references", "--source", str(src), "--task", "demo_human_or_worm",
                            "--dest", str(dest), "--mirror", str(mirror)]) == 2
    assert "Caenorhabditis_elegans" in capsys.readouterr().err


# --------------------------------------------------------------------------- Genomic Benchmarks on the real piece
def test_643_intervals_of_7_human_datasets_fall_inside_the_piece(shared_dir, real_genome):
    kept_total, by_ds = 0, {}
    for name in HUMAN_GB:
        ds = GBDataset(gb_dir(shared_dir, name))
        resolvers = _resolvers_for(ds, real_genome)
        drops: Counter = Counter()
        kept = 0
        for split in ("train", "test"):
            for _where, _line, seq, _label, _id in iter_intervals(ds, split, resolvers, drops, True):
                assert seq and set(seq) <= set("ACGTN")
                kept += 1
        rows = sum(sum(1 for _ in gzip.open(ds.class_file(s, c), "rt")) - 1 for s in ("train", "test")
                   for c in ds.classes)
        assert kept + sum(drops.values()) == rows, name      # nothing vanishes uncounted
        by_ds[name] = kept
        kept_total += kept
    assert kept_total == 643
    assert by_ds["human_ensembl_regulatory"] == 260 and by_ds["human_nontata_promoters"] == 9


def test_prepare_gb_regulatory_classes_differ_like_biology(shared_dir, real_genome, tmp_path):
    task = TASKS["gb"]["human_ensembl_regulatory"]
    meta = prepare_gb_task(gb_dir(shared_dir, task.source), real_genome, task, tmp_path / "reg",
                           allow_missing_regions=True)
    assert meta["classes"] == ["enhancer", "ocr", "promoter"]
    assert meta["files"]["train"]["rows"] + meta["files"]["test"]["rows"] == 260
    d = meta["dropped"]
    assert d["total"] == 289_061 - 260 and set(d["by_reason"]) == {"missing_region", "beyond_end"}
    assert d["by_reason"]["beyond_end"] == d["top_regions"]["chr2"]
    assert check_task_dir(tmp_path / "reg")["num_classes"] == 3
    seqs = {0: [], 1: [], 2: []}
    with open(tmp_path / "reg" / "train.csv") as fh:
        r = csv.DictReader(fh)
        assert r.fieldnames == ["sequence", "label", "id"]
        for row in r:
            seqs[int(row["label"])].append(row["sequence"])
            assert row["id"].split("/")[0] == meta["classes"][int(row["label"])]

    def cpg_oe(s):   # observed/expected CpG, the CpG-island statistic
        return s.count("CG") * len(s) / max(1, s.count("C") * s.count("G"))

    def mean(xs):
        return sum(xs) / len(xs)
    gc = {k: mean([(s.count("G") + s.count("C")) / len(s) for s in v]) for k, v in seqs.items()}
    oe = {k: mean([cpg_oe(s) for s in v]) for k, v in seqs.items()}
    # promoters are CpG-island rich; enhancers and open chromatin much less so
    assert oe[2] > 1.5 * oe[0] and oe[2] > 1.5 * oe[1]
    assert gc[2] > gc[0] and gc[2] > gc[1]


def test_minus_strand_is_reverse_complemented(shared_dir, real_genome, real_chr2_text):
    ds = GBDataset(gb_dir(shared_dir, "human_nontata_promoters"))
    strands = Counter()
    for split in ("train", "test"):
        with gzip.open(ds.class_file(split, "positive"), "rt") as fh:
            rows = {f"positive/{rec['id']}": rec for rec in csv.DictReader(fh)}
        for _w, _l, seq, label, rid in iter_intervals(ds, split, _resolvers_for(ds, real_genome), Counter(), True):
            rec = rows[rid]
            plus = real_chr2_text[int(rec["start"]):int(rec["end"])]
            assert seq == (reverse_complement(plus) if rec["strand"] == "-" else plus)
            assert label == 1 and len(seq) == 251
            strands[rec["strand"]] += 1
    assert strands == {"-": 7, "+": 2}


def test_real_gb_task_facts_on_the_piece(shared_dir, real_genome, tmp_path):
    """Row and drop counts of real datasets cut from the piece, and their metadata's
    reference names (the logic is tested above on synthetic datasets)."""
    ocr = TASKS["gb"]["human_ocr_ensembl"]
    meta = prepare_gb_task(gb_dir(shared_dir, ocr.source), real_genome, ocr, tmp_path / "ocr",
                           allow_missing_regions=True)
    assert meta["files"]["train"]["rows"] == 124
    cohn = TASKS["gb"]["human_enhancers_cohn"]
    src = gb_dir(shared_dir, cohn.source)
    with pytest.raises(DataError) as err:            # the first interval is not on chr2
        prepare_gb_task(src, real_genome, cohn, tmp_path / "o")
    assert err.value.path == str(src / "train" / "negative.csv.gz") and err.value.line == 2
    meta = prepare_gb_task(src, real_genome, cohn, tmp_path / "cohn", allow_missing_regions=True)
    assert meta["files"]["train"]["rows"] == 14 and meta["dropped"]["total"] == 27_775
    ds = GBDataset(gb_dir(shared_dir, "demo_human_or_worm"))
    assert reference_filename(ds.reference_url("human")) == "ensembl97_Homo_sapiens.GRCh38.dna.toplevel.fa.gz"
    assert reference_filename(ds.reference_url("worm")).startswith("ensembl104_Caenorhabditis_elegans")
