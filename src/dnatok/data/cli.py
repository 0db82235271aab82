"""``dnatok data …``: download, prepare, check, leakage, extract, gb-references."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from dnatok.errors import UserError


def _json_arg(value: str, what: str):
    """A JSON literal, or the path of a file holding one."""
    text = value
    if not value.lstrip().startswith(("{", "[")):
        p = Path(value)
        if not p.is_file():
            raise UserError(f"{what}: {value!r} is neither JSON nor an existing file")
        text = p.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{what}: invalid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None


def _print(obj) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def _logging():
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def cmd_download(args) -> int:
    from dnatok.data.download import download

    _logging()
    path = download(_json_arg(args.source, "--source"), args.dest, mirror=args.mirror)
    print(path)
    return 0


def _task(args):
    from dnatok.registry import get_task

    if args.task_json:
        info = _json_arg(args.task_json, "--task-json")
        if not isinstance(info, dict):
            raise UserError("--task-json must be a JSON object with the task's fields")
        if info.get("name") not in (None, args.task):
            raise UserError(f"--task {args.task} but --task-json names {info.get('name')!r}")
        info.setdefault("name", args.task)
        return info
    if args.benchmark == "csv":
        raise UserError("--benchmark csv needs --task-json (the task's fields: name, benchmark, num_classes, max_len …)")
    try:
        return get_task(args.benchmark, args.task)
    except KeyError as err:
        raise UserError(str(err.args[0])) from None


def _references(values):
    """--reference FASTA | DIR | CLASS=FASTA (repeatable) -> path or dict."""
    if not values:
        return None
    pairs = [v for v in values if "=" in v]
    if pairs and len(pairs) != len(values):
        raise UserError("--reference: give either one FASTA/folder or CLASS=FASTA pairs, not both")
    if not pairs:
        if len(values) > 1:
            raise UserError("--reference: several paths given; use CLASS=FASTA to assign them to classes")
        return values[0]
    return dict(v.split("=", 1) for v in values)


def cmd_prepare(args) -> int:
    _logging()
    task = _task(args)
    if args.benchmark == "gue":
        from dnatok.data.gue import prepare_gue_task
        meta = prepare_gue_task(args.source, task, args.out, map_iupac=args.map_iupac)
    elif args.benchmark == "csv":
        from dnatok.data.gue import prepare_csv_task
        meta = prepare_csv_task(args.source, task, args.out, map_iupac=args.map_iupac)
    elif args.benchmark == "gb":
        from dnatok.data.genomic_benchmarks import prepare_gb_task
        meta = prepare_gb_task(args.source, _references(args.reference), task, args.out,
                               allow_missing_regions=args.allow_missing_regions, map_iupac=args.map_iupac,
                               index_dir=args.index_dir)
    else:
        from dnatok.data.nucleotide_transformer import prepare_nt_task
        meta = prepare_nt_task(args.source, task, args.out, map_iupac=args.map_iupac)
    _print({"out": args.out, "files": meta["files"], "dropped": meta.get("dropped")})
    return 0


def cmd_check(args) -> int:
    from dnatok.data.validate import check_task_dir

    summary = check_task_dir(args.dir, num_classes=args.num_classes, max_len=args.max_len, map_iupac=args.map_iupac)
    _print(summary)
    return 0


def cmd_leakage(args) -> int:
    from dnatok.data.leakage import leakage_report, write_leakage

    reports = [leakage_report(d) for d in args.dirs]
    if args.out:
        write_leakage(reports, args.out)
    else:
        _print(reports if len(reports) > 1 else reports[0])
    return 0


def cmd_extract(args) -> int:
    from dnatok.data.genome import extract_intervals

    _logging()
    _print(extract_intervals(args.genome, args.bed, args.split, args.out, index_dir=args.index_dir))
    return 0


def cmd_gb_references(args) -> int:
    from dnatok.data.genomic_benchmarks import download_references, list_datasets
    from dnatok.registry import TASKS

    _logging()
    # study names map to GB dataset names (dummy_mouse_enhancers -> ..._ensembl); no
    # --task means every dataset in the source
    names = [TASKS["gb"][t].source if t in TASKS["gb"] else t for t in (args.task or [])]
    if not names:
        names = list_datasets(args.source)
        if not names:
            raise UserError(f"{args.source}: no Genomic Benchmarks dataset (metadata.yaml) found")
    out = {}
    for name in names:
        refs = download_references(args.source, args.dest, name=name, mirror=args.mirror)
        out[name] = {c: str(p) for c, p in refs.items()}
    _print(out)
    return 0


def add_commands(subparsers) -> None:
    data = subparsers.add_parser("data", help="download, prepare and check benchmark data",
                                 description="Data stage: downloads, task folders, checks, pretraining intervals.")
    sub = data.add_subparsers(dest="data_command", required=True)

    p = sub.add_parser("download", help="fetch one resource (checksummed, resumable, or from a local mirror)")
    p.add_argument("--source", required=True, help='JSON (or a JSON file): {"kind": "http"|"gdown"|"hf", ...}')
    p.add_argument("--dest", required=True, help="file to write (a folder for hub sources)")
    p.add_argument("--mirror", help="local file or folder to use instead of the network")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("prepare", help="turn a benchmark source into data/{benchmark}/{task}/")
    p.add_argument("--benchmark", required=True, choices=("gue", "gb", "nt", "csv"))
    p.add_argument("--task", required=True, help="task name (registry name, e.g. prom_core_all)")
    p.add_argument("--source", required=True, help="GUE.zip / GUE folder, GB dataset folder or zip, NT snapshot, "
                   "or a GUE-format folder (csv)")
    p.add_argument("--reference", action="append", metavar="FASTA|DIR|CLASS=FASTA",
                   help="GB reference genome(s); repeat CLASS=FASTA for per-class references")
    p.add_argument("--out", required=True, help="task folder to write")
    p.add_argument("--task-json", help="the task's fields as JSON (or a JSON file); default: the registry")
    p.add_argument("--map-iupac", action="store_true", help="map IUPAC ambiguity codes to N instead of failing")
    p.add_argument("--allow-missing-regions", action="store_true",
                   help="GB: drop (and count in task.json) intervals outside the reference instead of failing")
    p.add_argument("--index-dir", help="folder for FASTA indexes/decompressed copies of read-only references")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("check", help="validate a task folder (exit 2 with file:line on the first problem)")
    p.add_argument("dir")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--max-len", type=int)
    p.add_argument("--map-iupac", action="store_true", help="accept IUPAC ambiguity codes (as N)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("leakage", help="exact duplicate sequences within and across splits")
    p.add_argument("dirs", nargs="+", metavar="DIR")
    p.add_argument("--out", help="write a .json report, or a long-format TSV (any other name)")
    p.set_defaults(func=cmd_leakage)

    p = sub.add_parser("extract", help="write the sequences of one split of a BED of intervals to a FASTA")
    p.add_argument("--genome", required=True, help="FASTA (plain, bgzip or gzip)")
    p.add_argument("--bed", required=True, help="chrom, start, end, split (train/valid/test)")
    p.add_argument("--split", required=True, choices=("train", "valid", "test"))
    p.add_argument("--out", required=True)
    p.add_argument("--index-dir", help="folder for the genome's index if its folder is read-only")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("gb-references", help="download the reference genomes a Genomic Benchmarks dataset needs")
    p.add_argument("--source", required=True, help="GB dataset folder, or a folder/zip containing it")
    p.add_argument("--task", action="append", help="dataset (repeatable); default: every dataset in --source")
    p.add_argument("--dest", required=True, help="folder for the references")
    p.add_argument("--mirror", help="local folder holding the reference files")
    p.set_defaults(func=cmd_gb_references)
