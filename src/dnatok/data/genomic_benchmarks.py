"""Genomic Benchmarks (Grešová et al. 2023): interval lists + reference -> task folder.

A dataset folder holds ``metadata.yaml`` (per class: reference URL, type, naming quirk)
and ``{train,test}/<class>.csv.gz`` with ``id,region,start,end,strand`` (0-based,
half-open; an empty strand means ``+``; ``-`` means reverse complement). Classes sorted by
name are labels 0..K-1 (``task.json`` ``classes`` keeps the names). There is no dev split:
the study holds out 10% of train at fine-tuning time (the training stage does that).

Region names are matched against the FASTA index under every naming convention
(:class:`~dnatok.data.genome.RegionResolver`): ``chr2`` finds ``chr2`` in a UCSC-style
FASTA and ``2`` in Ensembl's, transcripts match without their version suffix.

An interval whose region is not in the reference, or that runs past its end, is an error
naming the file and line. ``allow_missing_regions=True`` (for a partial reference, e.g.
one chromosome) drops such intervals instead and reports the counts, by reason, split and
class, in ``task.json`` (``dropped``) and the log. Nothing is dropped silently.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import re
from collections import Counter
from pathlib import Path

from dnatok.data.archive import SourceTree
from dnatok.data.download import download
from dnatok.data.genome import RegionResolver, open_fasta, reverse_complement
from dnatok.data.taskdir import task_fields, write_task_dir
from dnatok.errors import DataError, UserError

log = logging.getLogger(__name__)

GB_SPLITS = ("train", "test")
INTERVAL_HEADER = ("id", "region", "start", "end", "strand")
# The repository's datasets/ folder (interval lists); pin a commit with `ref`.
GB_RAW_BASE = "https://raw.githubusercontent.com/ML-Bioinfo-CEITEC/genomic_benchmarks/{ref}/datasets"


class GBDataset:
    """One Genomic Benchmarks dataset inside a folder or zip (e.g. the GitHub archive)."""

    def __init__(self, source, name: str | None = None):
        import yaml

        self.tree = SourceTree(source)
        # the dataset folder itself, or anything containing <name>/metadata.yaml
        meta = None
        if self.tree.zip is None and (self.tree.root / "metadata.yaml").is_file():
            meta = str(self.tree.root / "metadata.yaml")
        elif name:
            meta = self.tree.find(f"{name}/metadata.yaml")
        if meta is None:
            raise UserError(f"{source}: no metadata.yaml" + (f" for dataset {name}" if name else ""))
        # class files sit beside metadata.yaml; as a string prefix this works for folders and zips
        self.prefix = meta[: -len("metadata.yaml")]
        self.meta_name = meta
        fh, self.meta_sha256 = self.tree.open_text(meta)
        try:
            self.metadata = yaml.safe_load(fh.read())
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            raise DataError(self.tree.label(meta), mark.line + 1 if mark else None, f"invalid YAML: {err}") from None
        classes = (self.metadata or {}).get("classes")
        if not isinstance(classes, dict) or not classes:
            raise DataError(self.tree.label(meta), None, "no 'classes' mapping")
        self.classes = sorted(classes)

    def class_file(self, split: str, cls: str) -> str:
        for ext in (".csv.gz", ".csv"):
            name = f"{self.prefix}{split}/{cls}{ext}"
            if self.tree.exists(name):
                return name
        raise UserError(f"{self.tree.label(self.meta_name)}: class {cls!r} has no {split}/{cls}.csv.gz")

    def reference_url(self, cls: str) -> str:
        return self.metadata["classes"][cls]["url"]


def list_datasets(source) -> list[str]:
    """Names of the datasets (folders holding ``metadata.yaml``) inside a folder or zip."""
    tree = SourceTree(source)
    try:
        if tree.zip is None:
            metas = [str(p) for p in tree.root.rglob("metadata.yaml")]
        else:
            metas = [n for n in tree._names if n.endswith("/metadata.yaml")]
    finally:
        tree.close()
    return sorted({Path(m).parent.name for m in metas})


def reference_filename(url: str) -> str:
    """Local file name for a reference URL: Ensembl releases share base names
    (``Homo_sapiens.GRCh38.dna.toplevel.fa.gz`` in release 97 and 100), so the release
    is kept in the name."""
    base = url.rstrip("/").rsplit("/", 1)[-1]
    m = re.search(r"release-(\d+)", url)
    return f"ensembl{m.group(1)}_{base}" if m else base


def reference_sources(dataset_source, name: str | None = None) -> dict[str, dict]:
    """``{local file name: download source}`` for the references a dataset needs."""
    ds = GBDataset(dataset_source, name)
    return {reference_filename(ds.reference_url(c)): {"kind": "http", "url": ds.reference_url(c)}
            for c in ds.classes}


def download_references(dataset_source, dest_dir, name: str | None = None, mirror=None) -> dict[str, Path]:
    """Download (or take from ``mirror``, a folder of reference files) every reference the
    dataset needs into ``dest_dir``, checksummed. Returns ``{class: path}``."""
    ds = GBDataset(dataset_source, name)
    dest_dir = Path(dest_dir)
    by_file = {}
    for fname, src in reference_sources(dataset_source, name).items():
        m = None
        if mirror is not None:
            m = Path(mirror) / fname
            if not m.exists():
                # a mirror may keep upstream base names
                m = Path(mirror) / src["url"].rsplit("/", 1)[-1]
        by_file[fname] = download(src, dest_dir / fname, mirror=m)
    return {c: by_file[reference_filename(ds.reference_url(c))] for c in ds.classes}


def download_dataset(name: str, dest, ref: str = "main", base_url: str | None = None, mirror=None) -> Path:
    """Fetch one dataset's interval lists (``metadata.yaml`` + ``{train,test}/<class>.csv.gz``)
    into ``dest`` through :func:`download` (checksummed). ``mirror``: a local
    ``datasets/`` folder (or the dataset folder itself)."""
    import yaml

    dest = Path(dest)
    base = (base_url or GB_RAW_BASE.format(ref=ref)).rstrip("/") + f"/{name}"
    mroot = None
    if mirror is not None:
        mroot = Path(mirror) / name if (Path(mirror) / name / "metadata.yaml").is_file() else Path(mirror)

    def get(rel: str) -> Path:
        m = (mroot / rel) if mroot is not None else None
        if m is not None and not m.is_file():
            raise UserError(f"mirror {mirror} has no {name}/{rel}")
        return download({"kind": "http", "url": f"{base}/{rel}"}, dest / rel, mirror=m)

    meta = yaml.safe_load(get("metadata.yaml").read_text())
    for cls in sorted(meta.get("classes") or {}):
        for split in GB_SPLITS:
            get(f"{split}/{cls}.csv.gz")
    return dest


def _references_for(ds: GBDataset, reference_fasta) -> dict[str, Path]:
    """``{class: FASTA path}`` from one path (all classes), a folder of downloaded
    references (:func:`reference_filename` names), or a dict keyed by class name, URL or
    file name."""
    if reference_fasta is None:
        raise UserError("Genomic Benchmarks needs the reference FASTA(s): pass --reference FASTA, "
                        "--reference CLASS=FASTA, or a folder filled by `dnatok data gb-references`")
    out = {}
    for cls in ds.classes:
        url = ds.reference_url(cls)
        if isinstance(reference_fasta, dict):
            hit = next((reference_fasta[k] for k in (cls, url, reference_filename(url), url.rsplit("/", 1)[-1])
                        if k in reference_fasta), None)
            if hit is None:
                raise UserError(f"no reference given for class {cls!r} (needs {url})")
            out[cls] = Path(hit)
        elif Path(reference_fasta).is_dir():
            cand = [Path(reference_fasta) / reference_filename(url), Path(reference_fasta) / url.rsplit("/", 1)[-1]]
            hit = next((c for c in cand if c.is_file()), None)
            if hit is None:
                raise UserError(f"{reference_fasta}: no {cand[0].name} for class {cls!r} (from {url})")
            out[cls] = hit
        else:
            out[cls] = Path(reference_fasta)
    return out


def iter_intervals(ds: GBDataset, split: str, resolvers: dict[str, RegionResolver], drops: Counter,
                   allow_missing_regions: bool):
    """Rows ``(file, line, sequence, label, id)`` of one split, cut from the references.

    ``drops`` counts what ``allow_missing_regions`` dropped, keyed
    ``(reason, split, class, region)``."""
    for label, cls in enumerate(ds.classes):
        name = ds.class_file(split, cls)
        where = ds.tree.label(name)
        fh, _ = ds.tree.open_text(name)
        resolver = resolvers[cls]
        reader = csv.reader(fh)
        header = tuple(next(reader, ()))
        if header != INTERVAL_HEADER:
            raise DataError(where, 1, f"header must be {','.join(INTERVAL_HEADER)}, got {','.join(header)!r}")
        for fields in reader:
            line = reader.line_num
            if len(fields) != 5:
                raise DataError(where, line, f"expected 5 fields ({','.join(INTERVAL_HEADER)}), found {len(fields)}")
            rid, region, start, end, strand = fields
            try:
                start, end = int(start), int(end)
            except ValueError:
                raise DataError(where, line, f"start/end are not integers: {fields[2]!r}, {fields[3]!r}") from None
            if start < 0 or end <= start:
                raise DataError(where, line, f"invalid interval {region}:{start}-{end}")
            if strand not in ("+", "-", ""):
                raise DataError(where, line, f"strand must be '+', '-' or empty, got {strand!r}")
            key = resolver.resolve(region)
            if key is None:
                if allow_missing_regions:
                    drops[("missing_region", split, cls, region)] += 1
                    continue
                tried = ", ".join(resolver.candidates(region))
                raise DataError(where, line, f"region {region!r} is not in the reference (tried {tried}); "
                                "wrong reference? (--allow-missing-regions drops and counts such intervals)")
            if end > resolver.lengths[key]:
                if allow_missing_regions:
                    drops[("beyond_end", split, cls, region)] += 1
                    continue
                raise DataError(where, line, f"interval {region}:{start}-{end} runs past the end of {key} "
                                f"(length {resolver.lengths[key]}): wrong genome build? "
                                "(--allow-missing-regions drops and counts such intervals)")
            seq = resolver.fetch(key, start, end)
            if strand == "-":
                seq = reverse_complement(seq)
            yield where, line, seq, label, f"{cls}/{rid}"


def _summarise_drops(drops: Counter, top: int = 20) -> dict:
    by_reason, by_split_class, regions = Counter(), Counter(), Counter()
    for (reason, split, cls, region), n in drops.items():
        by_reason[reason] += n
        by_split_class[f"{split}/{cls}"] += n
        regions[region] += n
    return {
        "total": sum(drops.values()),
        "by_reason": dict(sorted(by_reason.items())),
        "by_split_class": dict(sorted(by_split_class.items())),
        "distinct_regions": len(regions),
        # transcript lists can miss thousands of names; the most frequent suffice to diagnose
        "top_regions": dict(sorted(regions.items(), key=lambda kv: (-kv[1], kv[0]))[:top]),
    }


def prepare_gb_task(dataset_dir, reference_fasta, task, out_dir, *, allow_missing_regions: bool = False,
                    map_iupac: bool = False, index_dir=None) -> dict:
    """Cut a Genomic Benchmarks dataset into a task folder (``train.csv``, ``test.csv``,
    header ``sequence,label,id`` with id ``<class>/<interval id>``).

    ``dataset_dir``: the dataset folder, or a folder/zip containing ``<task.source>/``.
    ``reference_fasta``: see :func:`_references_for`.
    """
    info = task_fields(task)
    ds = GBDataset(dataset_dir, info.get("source") or info["name"])
    if len(ds.classes) != info["num_classes"]:
        raise UserError(f"{ds.tree.label(ds.meta_name)}: {len(ds.classes)} classes {ds.classes} but task "
                        f"{info['name']} declares {info['num_classes']}")
    refs = _references_for(ds, reference_fasta)
    opened: dict[Path, RegionResolver] = {}
    for path in refs.values():
        if path not in opened:
            opened[path] = RegionResolver(open_fasta(path, index_dir))
    resolvers = {cls: opened[refs[cls]] for cls in ds.classes}
    drops: Counter = Counter()
    splits = {s: (iter_intervals(ds, s, resolvers, drops, allow_missing_regions), True) for s in GB_SPLITS}
    source_files = {}
    for s in GB_SPLITS:
        files = {c: ds.class_file(s, c) for c in ds.classes}
        source_files[s] = {
            "path": ds.tree.label(f"{ds.prefix}{s}"),
            "classes": {c: {"path": ds.tree.label(f), "sha256": hashlib.sha256(ds.tree.read_bytes(f)).hexdigest()}
                        for c, f in files.items()},
        }
    extra = {
        "references": {c: str(p) for c, p in refs.items()},
        "metadata_sha256": ds.meta_sha256,
        "allow_missing_regions": allow_missing_regions,
    }

    def extra_after_rows():
        # called by the writer once every row has been read, so the counts are complete
        dropped = _summarise_drops(drops)
        if dropped["total"]:
            log.warning("%s: dropped %d interval(s) outside the reference: %s", info["name"], dropped["total"],
                        ", ".join(f"{k}={v}" for k, v in dropped["by_split_class"].items()))
        return {**extra, "dropped": dropped}

    try:
        return write_task_dir(out_dir, info, splits, classes=ds.classes, map_iupac=map_iupac,
                              source_files=source_files, extra=extra_after_rows)
    finally:
        ds.tree.close()
