"""The task registry: every benchmark task the pipeline knows, declared once.

Each task carries what the rest of the pipeline needs to know about it without
opening its files: which benchmark it belongs to, where it lives in the source
archive, how many classes it has, its true maximum length, the length the
original study padded it to, the metric its benchmark paper reports and the
study category it was pooled into for the significance tests (None for tasks
outside the paper's 44).

Task names follow the study's normalised names (``prom_core_all``, ``tf_0``,
``mouse_0``, ``covid``, ``reconstructed``, ``dummy_mouse_enhancers`` …) so that
the pipeline's own runs and the published per-run results join on ``task``.
GUE's yeast EMP tasks are not part of the study; they are named ``emp_<mark>``
so they never collide with the Nucleotide Transformer histone tasks.
"""
from __future__ import annotations

from dataclasses import dataclass, asdict

CATEGORIES = (
    "regulatory",
    "promoters",
    "enhancers",
    "transcription_factors",
    "epigenetic_marks",
    "splice_sites",
    "coding",
    "taxonomic",
    "virus_variant",
)


@dataclass(frozen=True)
class Task:
    name: str
    benchmark: str          # gue | gb | nt
    source: str             # path/name inside the source archive or hub dataset
    num_classes: int
    max_len: int            # longest sequence in the task (bp)
    study_len: int          # length the original study padded/truncated to
    metric: str             # headline metric of the benchmark paper: mcc | f1
    category: str | None    # study category; None = not one of the paper's 44 tasks

    def to_dict(self) -> dict:
        return asdict(self)


def _gue() -> list[Task]:
    tasks = []
    emp = ["H3", "H3K14ac", "H3K36me3", "H3K4me1", "H3K4me2", "H3K4me3", "H3K79me3", "H3K9ac", "H4", "H4ac"]
    for mark in emp:
        tasks.append(Task(f"emp_{mark}", "gue", f"EMP/{mark}", 2, 500, 500, "mcc", None))
    for i in range(5):
        tasks.append(Task(f"mouse_{i}", "gue", f"mouse/{i}", 2, 101, 101, "mcc", "transcription_factors"))
    for i in range(5):
        tasks.append(Task(f"tf_{i}", "gue", f"tf/{i}", 2, 101, 101, "mcc", "transcription_factors"))
    for sub in ("all", "notata", "tata"):
        # The study's config padded the 70-bp core promoters to 300 (on the left).
        tasks.append(Task(f"prom_core_{sub}", "gue", f"prom/prom_core_{sub}", 2, 70, 300, "mcc", "promoters"))
    for sub in ("all", "notata", "tata"):
        tasks.append(Task(f"prom_300_{sub}", "gue", f"prom/prom_300_{sub}", 2, 300, 300, "mcc", "promoters"))
    tasks.append(Task("reconstructed", "gue", "splice/reconstructed", 3, 400, 400, "mcc", "splice_sites"))
    tasks.append(Task("covid", "gue", "virus/covid", 9, 1000, 999, "f1", "virus_variant"))
    return tasks


def _gb() -> list[Task]:
    # (study name, GB dataset name, classes, longest sequence, study length, category)
    rows = [
        ("dummy_mouse_enhancers", "dummy_mouse_enhancers_ensembl", 2, 4707, 1024, "enhancers"),
        ("demo_coding_vs_intergenomic", "demo_coding_vs_intergenomic_seqs", 2, 200, 200, "coding"),
        ("demo_human_or_worm", "demo_human_or_worm", 2, 200, 200, "taxonomic"),
        ("human_enhancers_cohn", "human_enhancers_cohn", 2, 500, 500, "enhancers"),
        ("human_enhancers_ensembl", "human_enhancers_ensembl", 2, 573, 512, "enhancers"),
        ("human_ensembl_regulatory", "human_ensembl_regulatory", 3, 802, 512, "regulatory"),
        ("human_nontata_promoters", "human_nontata_promoters", 2, 251, 251, "regulatory"),
        ("human_ocr_ensembl", "human_ocr_ensembl", 2, 593, 512, "regulatory"),
    ]
    return [Task(n, "gb", s, k, m, L, "mcc", c) for n, s, k, m, L, c in rows]


def _nt() -> list[Task]:
    rows = [
        ("promoter_all", 2, 300, "promoters"),
        ("promoter_tata", 2, 300, "promoters"),
        ("promoter_no_tata", 2, 300, "promoters"),
        ("enhancers", 2, 400, "enhancers"),
        ("enhancers_types", 3, 400, "enhancers"),
        ("splice_sites_all", 3, 600, "splice_sites"),
        ("splice_sites_acceptors", 2, 600, "splice_sites"),
        ("splice_sites_donors", 2, 600, "splice_sites"),
    ]
    marks = ["H2AFZ", "H3K27ac", "H3K27me3", "H3K36me3", "H3K4me1", "H3K4me2",
             "H3K4me3", "H3K9ac", "H3K9me3", "H4K20me1"]
    rows += [(m, 2, 1000, "epigenetic_marks") for m in marks]
    return [Task(n, "nt", n, k, L, L, "mcc", c) for n, k, L, c in rows]


TASKS: dict[str, dict[str, Task]] = {}
for _t in _gue() + _gb() + _nt():
    TASKS.setdefault(_t.benchmark, {})[_t.name] = _t

BENCHMARKS = tuple(TASKS)

# The study's own task names differ from the source names in a few places; the
# published per-run tables use these raw names (see stats.select.normalise_task).
STUDY_TASK_ALIASES = {
    "demo_coding_vs_intergenomic_seqs": "demo_coding_vs_intergenomic",
    "dummy_mouse_enhancers_ensembl": "dummy_mouse_enhancers",
    "virus_covid": "covid",
    "splice_reconstructed": "reconstructed",
    "splice_sites_donor": "splice_sites_donors",  # combined_attn_results_cleaned.csv
    **{f"human_tf_{i}": f"tf_{i}" for i in range(5)},
}


def get_task(benchmark: str, name: str) -> Task:
    try:
        return TASKS[benchmark][name]
    except KeyError:
        known = ", ".join(sorted(TASKS.get(benchmark, {}))) or "(unknown benchmark)"
        raise KeyError(f"unknown task {benchmark}/{name}; known: {known}") from None


_STUDY_TASKS = {t.name: t for b in TASKS.values() for t in b.values() if t.category is not None}


def study_tasks() -> dict[str, Task]:
    """The paper's 44 tasks, keyed by study name (a new dict; the tasks are frozen)."""
    return dict(_STUDY_TASKS)


def category_of(task: str) -> str | None:
    t = _STUDY_TASKS.get(STUDY_TASK_ALIASES.get(task, task))
    return t.category if t else None


def task_from_path(path: str) -> Task | None:
    """Recognise a GUE-format folder (``.../prom/prom_core_tata``) or a prepared
    task folder (``data/gue/prom_core_tata``) as a registry task."""
    parts = [p for p in str(path).rstrip("/").split("/") if p]
    if not parts:
        return None
    tail2 = "/".join(parts[-2:])
    for bench in TASKS.values():
        for t in bench.values():
            if t.source == tail2 or (t.benchmark == "gb" and parts[-1] == t.source):
                return t
    if len(parts) >= 2 and parts[-2] in TASKS and parts[-1] in TASKS[parts[-2]]:
        return TASKS[parts[-2]][parts[-1]]
    return None
