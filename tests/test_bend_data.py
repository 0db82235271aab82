"""The BEND data layer: task format, gene-model labels, the offline gene_finding task, variants."""
from __future__ import annotations

import argparse
import json

import h5py
import numpy as np
import pytest

from dnatok.bend.annotation import Transcript, infer_cds, read_exon_models, read_gtf
from dnatok.bend.format import BendRecord, read_task, resolve_chrom, write_task
from dnatok.bend.gene_finding import Window, build_gene_finding, load_transcripts, separate_splits
from dnatok.bend.labels import base_labels, window_labels
from dnatok.bend.variants import Variant, read_variants, splice_variants, write_variants
from dnatok.data.genome import open_fasta, reverse_complement
from dnatok.errors import DataError, UserError

GENOME = "data/genome/hg38_chr2_1-2333275.fa.gz"
ANNOT = "data/annotation/gencode_v24_canonical_chr2_1-2333275.tsv"


@pytest.fixture(scope="module")
def real(shared_dir):
    genome, annot = shared_dir / GENOME, shared_dir / ANNOT
    fa = open_fasta(genome)
    transcripts, dropped, _ = load_transcripts(annot, fa)
    return {"genome": genome, "annot": annot, "fa": fa, "tx": {t.gene: t for t in transcripts},
            "dropped": dropped}


@pytest.fixture(scope="module")
def gf_task(real, tmp_path_factory):
    out = tmp_path_factory.mktemp("gf") / "gene_finding"
    meta = build_gene_finding(real["annot"], real["genome"], out, max_window_bp=2000)
    return meta, read_task(out, genome=real["genome"])


@pytest.fixture(scope="module")
def gf_default(real, tmp_path_factory):
    out = tmp_path_factory.mktemp("gfd") / "gene_finding"
    meta = build_gene_finding(real["annot"], real["genome"], out)
    return meta, read_task(out, genome=real["genome"])


def _tiny_fasta(path, seqs: dict[str, str]):
    path.write_text("".join(f">{k}\n{v}\n" for k, v in seqs.items()))
    return path


# ----------------------------------------------------------------------------- 1. splice sites
def test_every_donor_on_gt_and_acceptor_on_ag_both_strands(real):
    seq = real["fa"]["chr2"]
    n_introns = 0
    for t in real["tx"].values():
        lab = base_labels(t, t.tx_start, t.tx_end)
        off = 0 if t.strand == "+" else 4
        donors = np.flatnonzero(lab == off + 1) + t.tx_start
        acceptors = np.flatnonzero(lab == off + 3) + t.tx_start
        assert len(donors) == len(acceptors) == len(t.exons) - 1
        n_introns += len(donors)
        for p in donors:
            p = int(p)
            if t.strand == "+":
                assert seq[p:p + 2] == "GT", (t.gene, p)
            else:
                assert reverse_complement(seq[p - 1:p + 1]) == "GT", (t.gene, p)
        for p in acceptors:
            p = int(p)
            if t.strand == "+":
                assert seq[p - 1:p + 1] == "AG", (t.gene, p)
            else:
                assert reverse_complement(seq[p:p + 2]) == "AG", (t.gene, p)
    assert n_introns == 104
    assert sorted(real["tx"]) == sorted(["FAM110C", "SH3YL1", "ACP1", "FAM150B", "TMEM18", "SNTG2", "TPO",
                                         "PXDN", "MYT1L"])
    assert real["dropped"] == []


def test_task_splice_labels_sit_on_dinucleotides(gf_task, real):
    _, task = gf_task
    seq = real["fa"]["chr2"]
    motifs = {1: ("GT", 0), 3: ("AG", -1), 5: ("AC", -1), 7: ("CT", 0)}  # + strand text, offset
    for r, lab in zip(task.records, task.labels):
        for cls, (motif, off) in motifs.items():
            for i in np.flatnonzero(lab == cls):
                p = r.start + int(i) + off
                assert seq[p:p + 2] == motif, (r.id, cls, p)


# ----------------------------------------------------------------------------- 2. task shape
def test_gene_finding_rows_splits_and_round_trip(gf_task, real, tmp_path):
    meta, task = gf_task
    assert task.kind == "per_base" and task.num_classes == 9
    assert meta["rows"] == len(task.records) and meta["class_names"][8] == "non-coding"
    assert meta["read_strand"] is False and meta["metric"] == "mcc"
    for r, lab in zip(task.records, task.labels):
        assert len(lab) == r.end - r.start <= 2000 and lab.dtype == np.int8
    gene_split = {}
    for r in task.records:
        gene = r.id.split(":")[0]
        assert gene_split.setdefault(gene, r.split) == r.split  # no gene in two splits
    for s in ("train", "valid", "test"):
        assert {task.records[i].strand for i in task.split(s)} == {"+", "-"}
    assert {g for g, s in gene_split.items() if s == "test"} == {"TMEM18", "TPO"}
    assert {g for g, s in gene_split.items() if s == "valid"} == {"FAM110C", "ACP1"}
    # write -> read round trip, and sequences are + strand, upper case
    out = tmp_path / "again"
    write_task(out, "gf", "per_base", task.records, task.labels, 9, real["genome"])
    back = read_task(out)
    assert back.records == task.records
    assert all(np.array_equal(a, b) for a, b in zip(back.labels, task.labels))
    seqs = back.sequences(real["fa"], rows=[0])
    r0 = back.records[0]
    assert seqs[0] == real["fa"]["chr2"][r0.start:r0.end].upper()
    # real BEND style: bare BED without task.json, inferred classes, extra column ignored
    bed = out / "gf.bed"
    lines = bed.read_text().splitlines()
    (tmp_path / "bare").mkdir()
    bare = tmp_path / "bare" / "gf.bed"
    bare.write_text("\n".join(line + ("\textra" if i == 0 else "\tx") for i, line in enumerate(lines)) + "\n")
    (tmp_path / "bare" / "gf.hdf5").write_bytes((out / "gf.hdf5").read_bytes())
    t2 = read_task(bare)
    assert t2.meta["ignored_columns"] == ["extra"] and "num_classes" in t2.meta["inferred"]
    assert t2.records == task.records  # ids come with the HDF5


def test_task_sizes_at_both_window_limits(real, tmp_path):
    big = build_gene_finding(real["annot"], real["genome"], tmp_path / "big")
    # 594,155 bases before the split separation: SH3YL1 (train) / ACP1 (valid) shared 1,311
    # flank bases and ACP1 / FAM150B (train) 726, now cut at the midpoints
    assert big["rows"] == 53 and big["bases"] == 594155 - 2037
    assert big["counts"] == {"train": 39, "valid": 3, "test": 11}
    assert max(g["windows"] for g in big["source"]["genes"].values()) > 1
    src = big["source"]
    assert src["shared_bases"] == 0 and src["trimmed_bases"] == 2037 and src["dropped_windows"] == []
    assert [(t["genes"], t["overlap"], t["cut_at"], t["trimmed_bp"], t["bases"]) for t in src["split_trims"]] == [
        (["SH3YL1", "ACP1"], [263868, 265179], 264523, [656, 655], 1311),
        (["ACP1", "FAM150B"], [278557, 279283], 278920, [363, 363], 726)]


@pytest.mark.parametrize("build", ["gf_task", "gf_default"])
def test_no_base_in_two_splits_and_every_exon_kept(build, real, request):
    meta, task = request.getfixturevalue(build)
    recs = task.records
    for i, a in enumerate(recs):
        for b in recs[i + 1:]:
            if a.split != b.split and a.chrom == b.chrom:
                assert a.end <= b.start or b.end <= a.start, (a, b)
    for gene, t in real["tx"].items():
        split = meta["source"]["genes"][gene]["split"]
        covered = np.zeros(t.tx_end - t.tx_start, bool)
        for r in recs:
            if r.split == split:
                covered[max(r.start, t.tx_start) - t.tx_start:max(0, min(r.end, t.tx_end) - t.tx_start)] = True
        for s, e in t.exons:
            assert covered[s - t.tx_start:e - t.tx_start].all(), (gene, s, e)
    seq = real["fa"]["chr2"]
    motifs = {1: ("GT", 0), 3: ("AG", -1), 5: ("AC", -1), 7: ("CT", 0)}
    n_sites = {c: 0 for c in motifs}
    for r, lab in zip(recs, task.labels):
        assert len(lab) == r.end - r.start
        for cls, (motif, off) in motifs.items():
            for i in np.flatnonzero(lab == cls):
                n_sites[cls] += 1
                assert seq[r.start + int(i) + off:r.start + int(i) + off + 2] == motif, (r.id, cls)
    # each splice site once: no window of another split repeats a neighbour's donor/acceptor
    n_introns = {s: sum(len(t.exons) - 1 for t in real["tx"].values() if t.strand == s) for s in "+-"}
    assert n_sites == {1: n_introns["+"], 3: n_introns["+"], 5: n_introns["-"], 7: n_introns["-"]}


def _w(wid, gene, start, end, split, chrom="chr1"):
    return Window(wid, gene, chrom, start, end, "+", split)


def test_separate_splits_cuts_at_the_midpoint_and_keeps_same_split_overlaps():
    exons = {"A": [(10, 20)], "B": [(60, 70)], "C": [(80, 95)], "D": [(30, 40)]}
    wins = [_w("A", "A", 0, 50, "train"), _w("B", "B", 40, 75, "test"), _w("C", "C", 70, 100, "test"),
            _w("D", "D", 25, 45, "train", chrom="chr2")]
    out, trims = separate_splits(wins, exons)
    assert [(w.id, w.start, w.end) for w in out] == [("A", 0, 45), ("B", 45, 75), ("C", 70, 100), ("D", 25, 45)]
    assert trims == [{"windows": ["A", "B"], "genes": ["A", "B"], "splits": ["train", "test"], "chrom": "chr1",
                      "overlap": [40, 50], "cut_at": 45, "trimmed_bp": [5, 5], "bases": 10}]
    # three splits in a row: every cut is made on the untrimmed windows, so the result is disjoint
    wins = [_w("A", "A", 0, 100, "train"), _w("B", "B", 50, 150, "valid"), _w("C", "C", 60, 200, "test")]
    exons = {"A": [(0, 10)], "B": [(75, 80)], "C": [(180, 190)]}
    out, trims = separate_splits(wins, exons)
    assert [(w.start, w.end) for w in out] == [(0, 75), (75, 105), (105, 200)]
    assert [t["cut_at"] for t in trims] == [75, 80, 105]


def test_separate_splits_exon_loss_is_an_error_unless_another_window_keeps_it():
    # B (test) lies in A's (train) intron: cutting A's window at 100 takes A's second exon away
    wins = [_w("A", "A", 0, 200, "train"), _w("B", "B", 80, 120, "test")]
    with pytest.raises(UserError, match=r"genes A \(train\) and B \(test, window B\).*exon base chr1:150 of A"):
        separate_splits(wins, {"A": [(0, 10), (150, 190)], "B": [(90, 110)]})
    # A loses 95..99 (its exon 96-99 included) to B, but C, another train window, keeps them
    wins = [_w("A", "A", 0, 100, "train"), _w("B", "B", 90, 110, "test"), _w("C", "C", 50, 200, "train")]
    out, trims = separate_splits(wins, {"A": [(0, 10), (96, 99)], "B": [(105, 108)], "C": [(55, 60)]})
    assert [(w.id, w.start, w.end) for w in out] == [("A", 0, 95), ("B", 100, 110), ("C", 50, 100)]
    assert [(t["windows"], t["cut_at"], t["trimmed_bp"]) for t in trims] == [
        (["A", "B"], 95, [5, 5]), (["C", "B"], 100, [100, 10])]
    with pytest.raises(UserError, match=r"genes C \(train\) and B \(test"):
        separate_splits(wins, {"A": [(0, 10), (96, 99)], "B": [(105, 108)], "C": [(55, 60), (150, 160)]})
    # a window cut from both sides to nothing is dropped (its gene's exons are in its other window)
    wins = [_w("U", "U", 0, 20, "test"), _w("W:1", "W", 10, 20, "train"), _w("V", "V", 10, 30, "test"),
            _w("W:0", "W", 100, 200, "train")]
    out, _ = separate_splits(wins, {"U": [(0, 5)], "V": [(25, 28)], "W": [(150, 160)]})
    assert [(w.id, w.start, w.end) for w in out] == [("U", 0, 15), ("V", 15, 30), ("W:0", 100, 200)]


def test_real_windows_that_cannot_be_separated_name_both_genes(real, tmp_path):
    # 1 kb tiles: SH3YL1's last tile (train) reaches 284 bp into ACP1's first exon (valid),
    # whose own first tile starts at that exon; the midpoint falls past the exon's end
    with pytest.raises(UserError, match=r"genes ACP1 \(valid\) and SH3YL1 \(train, window SH3YL1:47\)"):
        build_gene_finding(real["annot"], real["genome"], tmp_path / "x", window_bp=1000)
    assert not (tmp_path / "x").exists()
    ok = build_gene_finding(real["annot"], real["genome"], tmp_path / "y", window_bp=1000,
                            splits={"TMEM18": "test", "TPO": "test", "FAM110C": "valid", "ACP1": "valid",
                                    "SH3YL1": "valid"})
    assert ok["source"]["shared_bases"] == 0


def test_split_errors_name_genes(real, tmp_path):
    with pytest.raises(UserError, match="NOPE"):
        build_gene_finding(real["annot"], real["genome"], tmp_path / "x", splits={"NOPE": "test"})
    with pytest.raises(UserError, match=r"split test needs genes on both strands.*TPO\(\+\)"):
        build_gene_finding(real["annot"], real["genome"], tmp_path / "x",
                           splits={"TPO": "test", "ACP1": "valid", "TMEM18": "valid"})
    assert not (tmp_path / "x").exists()


def test_chromosome_splits_place_every_gene_of_a_chromosome_and_genes_win():
    from dnatok.bend.gene_finding import assign_splits

    def t(gene, chrom, strand):
        return Transcript(gene, gene, chrom, strand, 0, 10, [(0, 10)])
    genes = [t("a", "chr1", "+"), t("b", "chr1", "-"), t("c", "chr8", "+"), t("d", "chr8", "-"),
             t("e", "chr9", "+"), t("f", "chr9", "-"), t("g", "chr9", "+")]
    got = assign_splits(genes, {"g": "train"}, {"8": "test", "chr9": "valid"})   # '8' means chr8
    assert got == {"a": "train", "b": "train", "c": "test", "d": "test", "e": "valid", "f": "valid", "g": "train"}
    with pytest.raises(UserError, match="chr5"):
        assign_splits(genes, None, {"chr5": "test"})


# ----------------------------------------------------------------------------- 3. CDS
def test_inferred_cds_and_cds_utr_classes(real):
    tx = real["tx"]
    myt1l = tx["MYT1L"]
    assert myt1l.cds == (1791866, 1979777) and myt1l.meta["cds_inferred"]
    assert {g: tx[g].meta["orf_aa"] for g in ("ACP1", "TMEM18", "TPO")} == {"ACP1": 158, "TMEM18": 140,
                                                                            "TPO": 933}
    for t in tx.values():
        lab = base_labels(t, t.tx_start, t.tx_end)
        cds_cls = 0 if t.strand == "+" else 4
        for s, e in t.exons:
            for p in range(s, e):
                want = cds_cls if t.cds[0] <= p < t.cds[1] else 8
                assert lab[p - t.tx_start] == want, (t.gene, p)
        assert (lab == cds_cls).sum() % 3 == 0  # a whole number of codons, stop included


# ----------------------------------------------------------------------------- 4. format errors
@pytest.fixture
def small_task(tmp_path):
    fasta = _tiny_fasta(tmp_path / "g.fa", {"chr1": "ACGT" * 50})
    recs = [BendRecord("a", "chr1", 10, 20, "+", "train"), BendRecord("b", "chr1", 30, 40, "-", "valid"),
            BendRecord("c", "chr1", 50, 60, "+", "test")]
    labs = [np.full(10, i, np.int8) for i in range(3)]
    out = tmp_path / "t"
    write_task(out, "t", "per_base", recs, labs, 9, fasta)
    return out, fasta


def test_read_task_wrong_header(small_task):
    out, _ = small_task
    bed = out / "t.bed"
    bed.write_text(bed.read_text().replace("chromosome\tstart", "chrom\tstart", 1))
    with pytest.raises(DataError, match=r"t\.bed:1: header") as err:
        read_task(out)
    assert err.value.line == 1


def test_read_task_label_length_and_class_range(small_task):
    out, _ = small_task
    with h5py.File(out / "t.hdf5", "r+") as h5:
        h5["labels"][1] = np.zeros(8, np.int8)
    with pytest.raises(DataError, match=r"t\.hdf5: row 1 \(b, t\.bed line 3\): 8 labels for 10 bases"):
        read_task(out)
    with h5py.File(out / "t.hdf5", "r+") as h5:
        h5["labels"][1] = np.full(10, 9, np.int8)
    with pytest.raises(DataError, match=r"row 1 \(b.*class ids \[9\] outside 0..8"):
        read_task(out)


def test_read_task_bed_line_errors(small_task):
    out, fasta = small_task
    bed = out / "t.bed"
    good = bed.read_text()
    bed.write_text(good.replace("chr1\t50\t60", "chr1\t50\t260"))
    with pytest.raises(DataError, match=r"t\.bed:4: end 260 is beyond the end of chr1 \(length 200\)"):
        read_task(out, genome=fasta)
    bed.write_text(good.replace("chr1\t30\t40", "chr9\t30\t40"))
    with pytest.raises(DataError, match=r"t\.bed:3: chromosome 'chr9' is not in the genome"):
        read_task(out, genome=fasta)
    bed.write_text(good.replace("\tvalid\n", "\tdev\n"))
    with pytest.raises(DataError, match=r"t\.bed:3: split 'dev'"):
        read_task(out)
    bed.write_text(good.replace("chr1\t30\t40", "chr1\t40\t30"))
    with pytest.raises(DataError, match=r"t\.bed:3: start 40"):
        read_task(out)
    bed.write_text(good + "chr1\t70\t80\t+\ttrain\n")
    with pytest.raises(DataError, match=r"t\.hdf5: 3 label rows for 4 BED rows"):
        read_task(out)
    bed.write_text(good + "chr1\t70\t80\t+\ttrain\td\n")
    with pytest.raises(DataError, match=r"t\.bed:5: 6 columns, the header has 5"):
        read_task(out)


def test_write_task_leaves_nothing_on_error(tmp_path, monkeypatch):
    (tmp_path / "ref").mkdir()
    (tmp_path / "out").mkdir()
    fasta = _tiny_fasta(tmp_path / "ref" / "g.fa", {"1": "A" * 100})
    recs = [BendRecord("a", "chr1", 10, 20, "+", "train"), BendRecord("b", "chr1", 30, 40, "+", "train")]
    tmp_path = tmp_path / "out"
    before = set(tmp_path.iterdir())
    with pytest.raises(UserError, match=r"row 1 \(b\): 9 labels for 10 bases"):
        write_task(tmp_path / "t", "t", "per_base", recs, [np.zeros(10, int), np.zeros(9, int)], 9, fasta)
    with pytest.raises(UserError, match="end 140 beyond 1"):
        write_task(tmp_path / "t", "t", "per_base", [BendRecord("c", "chr1", 130, 140)], [np.zeros(10, int)],
                   9, fasta)
    assert set(tmp_path.iterdir()) == before
    # a failure while writing keeps an existing task intact
    write_task(tmp_path / "t", "t", "per_base", recs[:1], [np.zeros(10, int)], 9, fasta)
    def disk_full(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(h5py, "File", disk_full)
    with pytest.raises(OSError, match="disk full"):
        write_task(tmp_path / "t", "t", "per_base", recs, [np.zeros(10, int)] * 2, 9, fasta)
    monkeypatch.undo()
    assert read_task(tmp_path / "t").records == recs[:1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]
    assert resolve_chrom("chr1", {"1"}) == "1" and resolve_chrom("2", {"chr2"}) == "chr2"


def test_multi_label_round_trip_and_depth_check(tmp_path):
    recs = [BendRecord("x", "chr1", 0, 512, "+", "train"), BendRecord("y", "chr1", 512, 1024, "-", "test")]
    write_task(tmp_path / "m", "m", "multi_label", recs, [[0, 3], []], 4)
    t = read_task(tmp_path / "m")
    assert t.kind == "multi_label" and t.num_classes == 4
    assert [a.tolist() for a in t.labels] == [[1, 0, 0, 1], [0, 0, 0, 0]]
    assert [r.id for r in t.records] == ["x", "y"] and "ids" not in t.meta
    assert (tmp_path / "m" / "m.bed").read_text().splitlines() == [
        "chromosome\tstart\tend\tstrand\tsplit\tlabel", "chr1\t0\t512\t+\ttrain\t0,3", "chr1\t512\t1024\t-\ttest\t"]
    meta = json.loads((tmp_path / "m" / "task.json").read_text())
    assert meta["label_depth"] == 4 and meta["metric"] == "auroc" and meta["ids"] == ["x", "y"]
    bed = tmp_path / "m" / "m.bed"
    bed.write_text(bed.read_text().replace("\t0,3\n", "\t0,4\n"))
    with pytest.raises(DataError, match=r"m\.bed:2: label indices \[4\] not below label_depth 4"):
        read_task(tmp_path / "m")


def test_bed_has_bends_exact_columns_and_ids_live_in_the_hdf5(small_task, tmp_path):
    out, fasta = small_task
    lines = (out / "t.bed").read_text().splitlines()
    assert lines[0] == "chromosome\tstart\tend\tstrand\tsplit"
    assert lines[1:] == ["chr1\t10\t20\t+\ttrain", "chr1\t30\t40\t-\tvalid", "chr1\t50\t60\t+\ttest"]
    with h5py.File(out / "t.hdf5", "r") as h5:
        assert [x.decode() for x in h5["ids"][()]] == ["a", "b", "c"]
    assert "ids" not in json.loads((out / "task.json").read_text())
    t = read_task(out, genome=fasta)
    assert [r.id for r in t.records] == ["a", "b", "c"]
    # round trip through a second write keeps the ids (an empty id is stored as the default)
    recs = t.records + [BendRecord("", "chr1", 70, 80, "-", "train")]
    write_task(tmp_path / "u", "u", "per_base", recs, t.labels + [np.zeros(10, np.int8)], 9, fasta)
    assert [r.id for r in read_task(tmp_path / "u").records] == ["a", "b", "c", "chr1:70-80(-)"]
    # BEND's released layout: no ids anywhere -> chrom:start-end(strand)
    (tmp_path / "bend").mkdir()
    (tmp_path / "bend" / "t.bed").write_text((out / "t.bed").read_text())
    with h5py.File(tmp_path / "bend" / "t.hdf5", "w") as h5:
        ds = h5.create_dataset("labels", (3,), dtype=h5py.vlen_dtype(np.int64))
        for i in range(3):
            ds[i] = np.full(10, i, np.int64)
    t = read_task(tmp_path / "bend" / "t.bed")
    assert [r.id for r in t.records] == ["chr1:10-20(+)", "chr1:30-40(-)", "chr1:50-60(+)"]
    # a third-party BED with a trailing name column: the names are the ids
    (tmp_path / "bend" / "t.bed").write_text("\n".join(line + ("\tname" if i == 0 else f"\tr{i}")
                                                       for i, line in enumerate(lines)) + "\n")
    assert [r.id for r in read_task(tmp_path / "bend" / "t.bed").records] == ["r1", "r2", "r3"]
    # stored ids win over a name column; a wrong number of them is an error
    (out / "t.bed").write_text((tmp_path / "bend" / "t.bed").read_text())
    assert [r.id for r in read_task(out).records] == ["a", "b", "c"]
    with h5py.File(out / "t.hdf5", "r+") as h5:
        del h5["ids"]
        h5.create_dataset("ids", data=["a", "b"], dtype=h5py.string_dtype("utf-8"))
    with pytest.raises(DataError, match=r"t\.hdf5: 2 ids for 3 BED rows"):
        read_task(out)


def test_multi_label_ids_in_task_json_and_bare_bed_defaults(tmp_path):
    recs = [BendRecord("peak1", "chr1", 0, 512, "+", "train"), BendRecord("peak2", "chr1", 512, 1024, "+", "valid")]
    write_task(tmp_path / "m", "m", "multi_label", recs, [[1], [0, 2]], 3)
    assert not list((tmp_path / "m").glob("*.hdf5"))
    back = read_task(tmp_path / "m")
    assert back.records == recs
    back = read_task(tmp_path / "m" / "m.bed")  # the BED named directly still finds task.json
    assert [r.id for r in back.records] == ["peak1", "peak2"]
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "m.bed").write_text((tmp_path / "m" / "m.bed").read_text())
    bare = read_task(tmp_path / "bare" / "m.bed", label_depth=3)
    assert [r.id for r in bare.records] == ["chr1:0-512(+)", "chr1:512-1024(+)"]
    meta = json.loads((tmp_path / "m" / "task.json").read_text())
    meta["ids"] = ["only-one"]
    (tmp_path / "m" / "task.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"task\.json: 1 ids for 2 BED rows"):
        read_task(tmp_path / "m")


# ----------------------------------------------------------------------------- 5. GTF
GTF = """\
##description: handwritten GENCODE-style lines
chr1\tHAVANA\tgene\t11\t60\t.\t+\t.\tgene_id "G1.1"; gene_type "protein_coding"; gene_name "PLUS";
chr1\tHAVANA\ttranscript\t11\t60\t.\t+\t.\tgene_id "G1.1"; transcript_id "T1.1"; gene_name "PLUS"; tag "basic"; tag "Ensembl_canonical";
chr1\tHAVANA\texon\t11\t20\t.\t+\t.\tgene_id "G1.1"; transcript_id "T1.1"; gene_name "PLUS"; exon_number 1;
chr1\tHAVANA\texon\t31\t40\t.\t+\t.\tgene_id "G1.1"; transcript_id "T1.1"; gene_name "PLUS"; exon_number 2;
chr1\tHAVANA\texon\t51\t60\t.\t+\t.\tgene_id "G1.1"; transcript_id "T1.1"; gene_name "PLUS"; exon_number 3;
chr1\tHAVANA\tUTR\t11\t15\t.\t+\t.\tgene_id "G1.1"; transcript_id "T1.1"; gene_name "PLUS";
chr1\tHAVANA\tCDS\t16\t20\t.\t+\t0\tgene_id "G1.1"; transcript_id "T1.1"; gene_name "PLUS";
chr1\tHAVANA\tstart_codon\t16\t18\t.\t+\t0\tgene_id "G1.1"; transcript_id "T1.1"; gene_name "PLUS";
chr1\tHAVANA\tCDS\t31\t40\t.\t+\t1\tgene_id "G1.1"; transcript_id "T1.1"; gene_name "PLUS";
chr1\tHAVANA\tCDS\t51\t53\t.\t+\t0\tgene_id "G1.1"; transcript_id "T1.1"; gene_name "PLUS";
chr1\tHAVANA\tstop_codon\t54\t56\t.\t+\t0\tgene_id "G1.1"; transcript_id "T1.1"; gene_name "PLUS";
chr1\tHAVANA\tUTR\t57\t60\t.\t+\t.\tgene_id "G1.1"; transcript_id "T1.1"; gene_name "PLUS";
chr1\tHAVANA\ttranscript\t11\t60\t.\t+\t.\tgene_id "G1.1"; transcript_id "T1.2"; gene_name "PLUS"; tag "basic";
chr1\tHAVANA\texon\t11\t60\t.\t+\t.\tgene_id "G1.1"; transcript_id "T1.2"; gene_name "PLUS";
chr1\tHAVANA\tCDS\t12\t59\t.\t+\t0\tgene_id "G1.1"; transcript_id "T1.2"; gene_name "PLUS";
chr1\tHAVANA\ttranscript\t101\t150\t.\t-\t.\tgene_id "G2.1"; transcript_id "T2.1"; gene_name "MINUS"; tag "basic";
chr1\tHAVANA\texon\t141\t150\t.\t-\t.\tgene_id "G2.1"; transcript_id "T2.1"; gene_name "MINUS";
chr1\tHAVANA\texon\t121\t130\t.\t-\t.\tgene_id "G2.1"; transcript_id "T2.1"; gene_name "MINUS";
chr1\tHAVANA\texon\t101\t110\t.\t-\t.\tgene_id "G2.1"; transcript_id "T2.1"; gene_name "MINUS";
chr1\tHAVANA\tCDS\t141\t147\t.\t-\t0\tgene_id "G2.1"; transcript_id "T2.1"; gene_name "MINUS";
chr1\tHAVANA\tCDS\t121\t130\t.\t-\t2\tgene_id "G2.1"; transcript_id "T2.1"; gene_name "MINUS";
chr1\tHAVANA\tCDS\t106\t110\t.\t-\t0\tgene_id "G2.1"; transcript_id "T2.1"; gene_name "MINUS";
chr1\tHAVANA\tstop_codon\t103\t105\t.\t-\t0\tgene_id "G2.1"; transcript_id "T2.1"; gene_name "MINUS";
chr1\tHAVANA\ttranscript\t101\t130\t.\t-\t.\tgene_id "G2.1"; transcript_id "T2.2"; gene_name "MINUS"; tag "basic";
chr1\tHAVANA\texon\t101\t130\t.\t-\t.\tgene_id "G2.1"; transcript_id "T2.2"; gene_name "MINUS";
chr1\tHAVANA\tCDS\t110\t120\t.\t-\t0\tgene_id "G2.1"; transcript_id "T2.2"; gene_name "MINUS";
chr3\tHAVANA\texon\t1\t10\t.\t+\t.\tgene_id "G3.1"; transcript_id "T3.1"; gene_name "ELSEWHERE";
"""


def test_read_gtf_choice_cds_and_labels(tmp_path):
    import gzip

    path = tmp_path / "mini.gtf.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(GTF)
    txs = {t.gene: t for t in read_gtf(path, chroms=["1"])}
    assert set(txs) == {"PLUS", "MINUS"}
    plus, minus = txs["PLUS"], txs["MINUS"]
    assert plus.transcript_id == "T1.1" and plus.meta["chosen_because"] == "Ensembl_canonical"
    assert minus.transcript_id == "T2.1" and minus.meta["chosen_because"] == "basic, longest CDS"
    assert plus.exons == [(10, 20), (30, 40), (50, 60)] and plus.cds == (15, 56)
    assert minus.exons == [(100, 110), (120, 130), (140, 150)] and minus.cds == (102, 147)
    want = [8] * 70
    want[15:20] = [0] * 5
    want[20], want[21:29], want[29] = 1, [2] * 8, 3
    want[30:40] = [0] * 10
    want[40], want[41:49], want[49] = 1, [2] * 8, 3
    want[50:56] = [0] * 6
    assert base_labels(plus, 0, 70).tolist() == want
    want = [8] * 60  # window 95..155
    for p in range(102, 110):
        want[p - 95] = 4
    want[110 - 95], want[119 - 95] = 7, 5
    for p in range(111, 119):
        want[p - 95] = 6
    for p in range(120, 130):
        want[p - 95] = 4
    want[130 - 95], want[139 - 95] = 7, 5
    for p in range(131, 139):
        want[p - 95] = 6
    for p in range(140, 147):
        want[p - 95] = 4
    assert base_labels(minus, 95, 155).tolist() == want
    both = window_labels(list(txs.values()), 0, 160)
    assert both[:70].tolist() == base_labels(plus, 0, 70).tolist()
    assert both[95:155].tolist() == want
    assert infer_cds(plus, None) is plus  # a known CDS is kept (the genome is not read)
    assert len(read_gtf(path)) == 3


def test_overlapping_transcripts_with_clashing_classes_are_an_error():
    a = Transcript("A", "A", "chr1", "+", 0, 50, [(0, 10), (40, 50)], (0, 50))
    b = Transcript("B", "B", "chr1", "-", 20, 80, [(20, 30), (70, 80)], (20, 80))
    with pytest.raises(UserError, match="B and A give base chr1:20"):
        window_labels([a, b], 0, 80)


def test_bad_exon_models_name_the_line(tmp_path):
    head = "#NAME\tCHROM\tSTRAND\tTX_START\tTX_END\tEXON_START\tEXON_END\n"
    cases = {"G\t2\t+\t0\t100\t0,50,\t10,\n": r":2: 2 exon starts but 1 exon ends",
             "G\t2\t+\t0\t100\t50,0,\t60,10,\n": r":2: exons are not sorted",
             "G\t2\t+\t0\t100\t0,5,\t10,60,\n": r":2: exons 0-10 and 5-60 overlap",
             "G\t2\t+\t0\t100\t0,50,\t10,160,\n": r":2: exon 50-160 lies outside",
             "G\t2\t*\t0\t100\t0,\t10,\n": r":2: strand '\*'"}
    for row, msg in cases.items():
        p = tmp_path / "m.tsv"
        p.write_text(head + row)
        with pytest.raises(DataError, match=msg):
            read_exon_models(p)


# ----------------------------------------------------------------------------- 6. variants
def test_splice_and_deep_variants(real, tmp_path):
    seq = real["fa"]["chr2"]
    vs = splice_variants(list(real["tx"].values()), real["fa"], n_deep_per_intron=2, min_intron_distance=200)
    splice = [v for v in vs if v.label == 1]
    deep = [v for v in vs if v.label == 0]
    assert len(splice) == 208 and len(deep) > 100
    strand = {t.gene: t.strand for t in real["tx"].values()}
    for v in splice:
        assert seq[v.pos] == v.ref and v.alt != v.ref
        tx_base = v.ref if strand[v.gene] == "+" else reverse_complement(v.ref)
        assert tx_base in ("GT" if v.kind == "donor" else "AG")
    exons = [e for t in real["tx"].values() for e in t.exons]
    for v in deep:
        assert seq[v.pos] == v.ref
        assert min(max(s - v.pos, v.pos - e + 1, 0) for s, e in exons) >= 200
    again = splice_variants(list(real["tx"].values()), real["fa"], n_deep_per_intron=2)
    other = splice_variants(list(real["tx"].values()), real["fa"], n_deep_per_intron=2, seed=1)
    assert again == vs and other != vs
    path = tmp_path / "v.tsv"
    write_variants(path, vs)
    assert read_variants(path, genome=real["fa"]) == vs
    lines = path.read_text().splitlines()
    f = lines[5].split("\t")
    f[3], f[4] = f[4], f[3]
    lines[5] = "\t".join(f)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"v\.tsv:6: ref .* but the genome has"):
        read_variants(path, genome=real["fa"])


def test_read_variants_format_errors(tmp_path):
    p = tmp_path / "v.tsv"
    write_variants(p, [Variant("a", "chr1", 5, "A", "C", 1, "G", "donor")])
    fasta = _tiny_fasta(tmp_path / "g.fa", {"chr1": "AAAAAAAAAA"})
    assert read_variants(p, genome=fasta)[0].pos == 5
    p.write_text(p.read_text().replace("\t6\t", "\t7\t"))
    with pytest.raises(DataError, match=r"v\.tsv:2: an SNV needs end = start \+ 1"):
        read_variants(p)


# ----------------------------------------------------------------------------- CLI
def test_cli_gene_finding_check_and_variants(real, tmp_path, capsys):
    from dnatok.bend.cli import add_commands

    parser = argparse.ArgumentParser(prog="dnatok")
    add_commands(parser.add_subparsers(dest="command", required=True))

    def run(*argv):
        args = parser.parse_args(list(argv))
        return args.func(args)

    out = tmp_path / "gf"
    assert run("bend", "task", "gene-finding", "--annotation", str(real["annot"]), "--format", "exon_models",
               "--genome", str(real["genome"]), "--out", str(out), "--max-window-bp", "2000",
               "--split", "TMEM18=test", "--split", "TPO=test", "--split", "FAM110C=valid",
               "--split", "ACP1=valid") == 0
    assert "109 windows" in capsys.readouterr().out
    assert run("bend", "check", "--task", str(out)) == 0
    text = capsys.readouterr().out
    # 37 donors+: ACP1's first donor is no longer repeated in SH3YL1's (train) flank
    assert "per_base, 109 rows" in text and "checked against" in text and "donor+ 37" in text
    assert run("bend", "variants", "--annotation", str(real["annot"]), "--genome", str(real["genome"]),
               "--out", str(tmp_path / "v.tsv"), "--deep-per-intron", "1", "--seed", "3") == 0
    assert "208 splice-breaking" in capsys.readouterr().out
    with pytest.raises(UserError, match="GENE=SPLIT"):
        run("bend", "task", "gene-finding", "--annotation", str(real["annot"]), "--genome", str(real["genome"]),
            "--out", str(tmp_path / "x"), "--split", "TPO")


def test_cli_import_of_a_bare_bend_bed(tmp_path, capsys):
    from dnatok.bend.cli import add_commands

    parser = argparse.ArgumentParser(prog="dnatok")
    add_commands(parser.add_subparsers(dest="command", required=True))
    fasta = _tiny_fasta(tmp_path / "g.fa", {"chr1": "ACGT" * 300})
    bed = tmp_path / "chromatin.bed"
    bed.write_text("chromosome\tstart\tend\tstrand\tsplit\tlabel\n"
                   "chr1\t0\t512\t+\ttrain\t0,2\nchr1\t512\t1024\t-\ttest\t\n")
    args = parser.parse_args(["bend", "import", "--name", "chromatin", "--bed", str(bed), "--kind", "multi_label",
                              "--num-classes", "3", "--genome", str(fasta), "--out", str(tmp_path / "t")])
    assert args.func(args) == 0
    t = read_task(tmp_path / "t", genome=fasta)
    assert t.num_classes == 3 and [a.tolist() for a in t.labels] == [[1, 0, 1], [0, 0, 0]]
    assert t.records[0].id == "chr1:0-512(+)"
    bed.write_text(bed.read_text().replace("chr1\t512\t1024", "chr1\t512\t2000"))
    args = parser.parse_args(["bend", "import", "--name", "c", "--bed", str(bed), "--kind", "multi_label",
                              "--num-classes", "3", "--genome", str(fasta), "--out", str(tmp_path / "u")])
    with pytest.raises(DataError, match=r"chromatin\.bed:3: end 2000"):
        args.func(args)
    assert not (tmp_path / "u").exists()
