"""Data stage: downloads, benchmark task folders, checks, pretraining intervals.

Public functions (see each module): ``download.download``, :func:`prepare_gue_task`,
:func:`prepare_csv_task`, :func:`prepare_gb_task`, :func:`prepare_nt_task`,
:func:`check_task_dir`, :func:`leakage_report`, :func:`extract_intervals`,
:func:`sample_windows`. The demo simulator (``simulate``) is imported on its own, and so is
``dnatok.data.download.download`` (re-exporting it here would hide the module of the
same name).
"""
from dnatok.data.genome import extract_intervals, open_fasta, reverse_complement, sample_windows
from dnatok.data.genomic_benchmarks import prepare_gb_task
from dnatok.data.gue import prepare_csv_task, prepare_gue_task
from dnatok.data.leakage import leakage_report
from dnatok.data.nucleotide_transformer import prepare_nt_task
from dnatok.data.validate import check_task_dir

__all__ = [
    "extract_intervals", "open_fasta", "reverse_complement", "sample_windows", "prepare_gb_task",
    "prepare_csv_task", "prepare_gue_task", "leakage_report", "prepare_nt_task", "check_task_dir",
]
