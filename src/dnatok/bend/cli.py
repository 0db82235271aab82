"""`dnatok bend task gene-finding | import | variants | check` subcommands (the data half of
the BEND layer); the evaluation half (:mod:`dnatok.bend.run_cli`: embed, probe, score-variants)
is added to the same ``bend`` parser when that module is present."""
from __future__ import annotations

import time
from pathlib import Path

from dnatok.errors import UserError


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("bend", help="BEND-format tasks built offline from gene models; zero-shot variants",
                              description="Builds BEND-layout tasks (BED + HDF5 + task.json) and variant sets.")
    sub = p.add_subparsers(dest="bend_command", required=True)

    t = sub.add_parser("task", help="build a BEND task")
    tsub = t.add_subparsers(dest="bend_task", required=True)
    g = tsub.add_parser("gene-finding", help="per-base 9-class gene finding (BEND labels_simple_direction_DA)")
    g.add_argument("--annotation", required=True, type=Path, help="exon-model table (SpliceAI layout) or GTF")
    g.add_argument("--format", dest="fmt", choices=("exon_models", "gtf"), default="exon_models")
    g.add_argument("--genome", required=True, type=Path, help="reference FASTA (plain/gz/bgzip)")
    g.add_argument("--out", required=True, type=Path, help="task folder to write (atomically)")
    g.add_argument("--max-window-bp", type=int, default=12000, help="genes longer than this (with flanks) are tiled")
    g.add_argument("--window-bp", type=int, default=None, help="cut every gene into tiles of exactly this length")
    g.add_argument("--flank-bp", type=int, default=1000)
    g.add_argument("--split", action="append", default=None, metavar="GENE=SPLIT",
                   help="assign a gene to train/valid/test (repeatable; replaces the chr2-piece default, "
                        "unnamed genes go to train)")
    g.add_argument("--split-chrom", action="append", default=None, metavar="CHROM=SPLIT",
                   help="put every gene of a chromosome in a split (repeatable; --split wins for a gene)")
    g.add_argument("--name", default="gene_finding", help="task name (file stem)")
    g.set_defaults(func=_gene_finding)

    v = sub.add_parser("variants", help="zero-shot SNVs: splice-dinucleotide breakers vs deep intronic")
    v.add_argument("--annotation", required=True, type=Path)
    v.add_argument("--format", dest="fmt", choices=("exon_models", "gtf"), default="exon_models")
    v.add_argument("--genome", required=True, type=Path)
    v.add_argument("--out", required=True, type=Path, help="output TSV")
    v.add_argument("--deep-per-intron", type=int, default=2)
    v.add_argument("--min-intron-distance", type=int, default=200)
    v.add_argument("--seed", type=int, default=0)
    v.set_defaults(func=_variants)

    m = sub.add_parser("import", help="import a released BEND task (BED [+ HDF5]) into a checked task folder")
    m.add_argument("--name", required=True, help="task name (file stem of the written task)")
    m.add_argument("--bed", required=True, type=Path)
    m.add_argument("--hdf5", type=Path, default=None, help="per-base labels (default: the BED's sibling .hdf5)")
    m.add_argument("--kind", required=True, choices=("per_base", "multi_label"))
    m.add_argument("--num-classes", required=True, type=int, help="classes (per_base) or label depth (multi_label)")
    m.add_argument("--genome", required=True, type=Path, help="the task's reference FASTA (rows are checked)")
    m.add_argument("--read-strand", action="store_true", help="the task reads '-' rows reverse-complemented")
    m.add_argument("--metric", default=None, help="default: mcc (per_base), auroc (multi_label)")
    m.add_argument("--out", required=True, type=Path)
    m.set_defaults(func=_import)

    c = sub.add_parser("check", help="read and validate a BEND task folder (or BED), print counts")
    c.add_argument("--task", required=True, type=Path, help="task folder or .bed")
    c.add_argument("--hdf5", type=Path, default=None)
    c.add_argument("--genome", type=Path, default=None,
                   help="check rows against this FASTA (default: the genome named in task.json, if present)")
    c.set_defaults(func=_check)

    from dnatok.bend import run_cli

    run_cli.add_commands(sub)


def _parse_splits(items, flag: str = "--split", what: str = "GENE") -> dict[str, str] | None:
    if not items:
        return None
    out = {}
    for item in items:
        name, eq, split = item.partition("=")
        if not eq or not name or not split:
            raise UserError(f"{flag} {item!r}: expected {what}=SPLIT")
        out[name] = split
    return out


def _gene_finding(args) -> int:
    from dnatok.bend.gene_finding import build_gene_finding

    t0 = time.perf_counter()
    meta = build_gene_finding(args.annotation, args.genome, args.out, window_bp=args.window_bp,
                              flank_bp=args.flank_bp, max_window_bp=args.max_window_bp,
                              splits=_parse_splits(args.split), fmt=args.fmt, name=args.name,
                              chrom_splits=_parse_splits(args.split_chrom, "--split-chrom", "CHROM"))
    counts = ", ".join(f"{s} {n}" for s, n in meta["counts"].items())
    print(f"gene_finding: {meta['rows']} windows ({counts}), {meta['bases']} bases, "
          f"{len(meta['source']['genes'])} genes -> {args.out} ({time.perf_counter() - t0:.1f} s)")
    return 0


def _import(args) -> int:
    from dnatok.bend.format import file_sha256, read_task, write_task

    if args.kind == "per_base":
        task = read_task(args.bed, hdf5=args.hdf5, genome=args.genome, num_classes=args.num_classes)
    else:
        task = read_task(args.bed, genome=args.genome, label_depth=args.num_classes)
    if task.kind != args.kind:
        raise UserError(f"{args.bed}: found a {task.kind} task, --kind says {args.kind}")
    extra = {"read_strand": bool(args.read_strand),
             "source": {"imported_from": {"bed": str(args.bed.resolve()), "bed_sha256": file_sha256(args.bed),
                                          "hdf5": task.meta.get("hdf5_path")},
                        "ignored_columns": task.meta.get("ignored_columns", [])}}
    if args.metric:
        extra["metric"] = args.metric
    meta = write_task(args.out, args.name, args.kind, task.records, task.labels, args.num_classes, args.genome,
                      extra_meta=extra)
    counts = ", ".join(f"{s} {n}" for s, n in meta["counts"].items())
    print(f"imported {args.name}: {meta['rows']} rows ({counts}) -> {args.out}")
    return 0


def _variants(args) -> int:
    from dnatok.bend.variants import splice_variants, write_variants

    vs = splice_variants(args.annotation, args.genome, n_deep_per_intron=args.deep_per_intron,
                         min_intron_distance=args.min_intron_distance, seed=args.seed, fmt=args.fmt)
    write_variants(args.out, vs)
    pos = sum(v.label for v in vs)
    print(f"variants: {len(vs)} ({pos} splice-breaking, {len(vs) - pos} deep intronic) -> {args.out}")
    return 0


def _check(args) -> int:
    import numpy as np

    from dnatok.bend.format import read_task

    genome = args.genome
    if genome is None:
        from dnatok.bend.format import _locate

        meta = _locate(args.task, args.hdf5)[2] or {}
        g = (meta.get("genome") or {}).get("path")
        if g and Path(g).is_file():
            genome = Path(g)
    task = read_task(args.task, hdf5=args.hdf5, genome=genome)
    counts = ", ".join(f"{s} {n}" for s, n in task.counts().items())
    bases = sum(r.end - r.start for r in task.records)
    print(f"{task.name}: {task.kind}, {len(task.records)} rows ({counts}), {bases} bases, "
          f"{task.num_classes} {'classes' if task.kind == 'per_base' else 'labels'}"
          + (f", checked against {genome}" if genome else ", no genome check"))
    if task.labels:
        if task.kind == "per_base":
            hist = np.bincount(np.concatenate(task.labels).astype(np.int64), minlength=task.num_classes)
        else:
            hist = np.sum(task.labels, axis=0)
        names = task.meta.get("class_names") or [str(i) for i in range(task.num_classes)]
        print("  " + ", ".join(f"{n} {int(c)}" for n, c in zip(names, hist)))
    return 0
