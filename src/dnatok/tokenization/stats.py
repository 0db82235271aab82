"""How a tokenizer cuts the sequences of benchmark tasks: compression, vocabulary use, [UNK]s
and the distribution of token lengths (the analogue of DNABERT-2's Fig. 3a).

One row per tokenizer x task; the sequences of all splits present in the task directory
(train.csv, dev.csv, test.csv) are pooled. Token lengths are counted over token
*occurrences* (usage-weighted, not over the vocabulary), in bp, special tokens excluded;
[UNK] counts as length 1 in the histogram and is also reported as ``unk_frac``.

Learned vocabularies (vq, hrq: one code per base) add their intrinsic measures on the same
sequences (``dnatok.tokenization.learned.intrinsic_stats``): the share of codes used, the
perplexity of the code histogram, the reconstruction accuracy of the bases from the codes,
H(code | centre base) in bits (how much context a code carries beyond its own base) and
``context_bp``, the shortest centred k-mer that (nearly) determines the code. These columns
are empty for the other kinds.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from dnatok.errors import DataError, UserError
from dnatok.tokenization.learned_spec import LEARNED_KINDS
from dnatok.tokenization.vocab import N_SPECIAL, UNK_ID

SPLITS = ("train", "dev", "test")
COLUMNS = ("tokenizer", "kind", "vocab_size", "task", "splits", "sequences", "bp", "tokens",
           "tokens_per_seq_mean", "tokens_per_seq_max", "bp_per_token", "vocab_used",
           "vocab_used_frac", "unk_frac", "mean_token_len", "token_length_hist",
           "code_usage", "code_perplexity", "recon_acc", "code_given_base_bits", "context_bp")
LEARNED_COLUMNS = {"code_usage": "usage", "code_perplexity": "perplexity", "recon_acc": "recon_acc",
                   "code_given_base_bits": "cond_entropy_base_bits", "context_bp": "context_bp"}
# Intrinsic measures are estimated on at most this many bases of a task (their plug-in
# entropies need many positions, and the decoder pass costs time on large tasks).
LEARNED_SAMPLE_BP = 200_000


def read_task_sequences(task_dir) -> tuple[list[str], list[str]]:
    """All sequences of the splits present in ``task_dir`` and the names of those splits."""
    task_dir = Path(task_dir)
    seqs, used = [], []
    for split in SPLITS:
        path = task_dir / f"{split}.csv"
        if not path.is_file():
            continue
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or "sequence" not in header:
                raise DataError(path, 1, "header must contain a 'sequence' column")
            col = header.index("sequence")
            for lineno, row in enumerate(reader, start=2):
                if len(row) != len(header):
                    raise DataError(path, lineno, f"expected {len(header)} fields, got {len(row)}")
                seqs.append(row[col])
        used.append(split)
    if not used:
        raise UserError(f"{task_dir}: no train.csv, dev.csv or test.csv")
    return seqs, used


def is_learned(tok) -> bool:
    return getattr(tok, "kind", None) in LEARNED_KINDS


def token_lengths(tok) -> np.ndarray:
    """bp spelled by each token id (0 for special tokens, 1 for [UNK]; a learned code
    stands for one base)."""
    if is_learned(tok):
        lengths = np.ones(tok.vocab_size, dtype=np.int64)
        lengths[:N_SPECIAL] = 0
    else:
        lengths = np.array([0 if i < N_SPECIAL else len(t) for i, t in enumerate(tok.id_to_token)],
                           dtype=np.int64)
    lengths[UNK_ID] = 1
    return lengths


def encode_hist(hist: dict[int, int]) -> str:
    """Compact histogram: 'length:count' pairs joined by ';', lengths ascending."""
    return ";".join(f"{k}:{v}" for k, v in sorted(hist.items()))


def decode_hist(text: str) -> dict[int, int]:
    if not text:
        return {}
    return {int(k): int(v) for k, v in (item.split(":") for item in text.split(";"))}


def task_stats(tok, name: str, task: str, seqs: list[str], splits: list[str],
               chunk: int = 20000) -> dict:
    lengths = token_lengths(tok)
    counts = np.zeros(tok.vocab_size, dtype=np.int64)
    per_seq = []
    bp = 0
    for start in range(0, len(seqs), chunk):  # bounded memory on large tasks
        part = seqs[start:start + chunk]
        ids, offsets = tok._encode_flat(part)
        counts += np.bincount(ids, minlength=tok.vocab_size)
        per_seq.append(np.diff(offsets))
        bp += sum(len(s) for s in part)
    per_seq = np.concatenate(per_seq) if per_seq else np.zeros(0, dtype=np.int64)
    n_tokens = int(counts.sum())
    hist_arr = np.bincount(lengths[UNK_ID:], weights=counts[UNK_ID:]).astype(np.int64) \
        if n_tokens else np.zeros(0, dtype=np.int64)
    # [UNK] is at index UNK_ID; specials other than [UNK] never occur in encoded sequences.
    hist = {int(L): int(c) for L, c in enumerate(hist_arr) if c}
    used = int((counts[N_SPECIAL:] > 0).sum())
    regular = tok.vocab_size - N_SPECIAL
    return {
        "tokenizer": name, "kind": tok.kind, "vocab_size": tok.vocab_size, "task": task,
        "splits": "+".join(splits), "sequences": len(seqs), "bp": bp, "tokens": n_tokens,
        "tokens_per_seq_mean": round(float(per_seq.mean()), 4) if per_seq.size else 0.0,
        "tokens_per_seq_max": int(per_seq.max(initial=0)),
        "bp_per_token": round(bp / n_tokens, 4) if n_tokens else 0.0,
        "vocab_used": used, "vocab_used_frac": round(used / regular, 6),
        "unk_frac": round(int(counts[UNK_ID]) / n_tokens, 8) if n_tokens else 0.0,
        "mean_token_len": round(float((lengths * counts).sum() / n_tokens), 4) if n_tokens else 0.0,
        "token_length_hist": encode_hist(hist),
        **learned_stats(tok, seqs),
    }


def learned_stats(tok, seqs: list[str]) -> dict:
    """The learned-vocabulary columns (empty strings for other kinds), on the first
    ``LEARNED_SAMPLE_BP`` bases of the task's sequences."""
    if not is_learned(tok):
        return {col: "" for col in LEARNED_COLUMNS}
    from dnatok.tokenization.learned import intrinsic_stats

    sample, left = [], LEARNED_SAMPLE_BP
    for s in seqs:
        if left <= 0:
            break
        sample.append(s[:left])
        left -= len(sample[-1])
    stats = intrinsic_stats(tok, sample)
    return {col: round(float(stats[key]), 6) for col, key in LEARNED_COLUMNS.items()}


def stats_table(tokenizers: list[tuple[str, object]], task_dirs: list) -> list[dict]:
    """Rows for every (name, DnaTokenizer) x task directory."""
    tasks = [(Path(d).name, *read_task_sequences(d)) for d in task_dirs]
    return [task_stats(tok, name, task, seqs, splits)
            for name, tok in tokenizers for task, seqs, splits in tasks]


def write_tsv(rows: list[dict], path) -> None:
    from dnatok.io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n")
            w.writeheader()
            w.writerows(rows)


def plot_length_distribution(rows: list[dict], path) -> None:
    """Token length distribution per tokenizer (occurrences pooled over the tasks), as the
    share of tokens of each length: the analogue of DNABERT-2 Fig. 3a."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dnatok.io import atomic_path

    pooled: dict[str, dict[int, int]] = {}
    for row in rows:
        acc = pooled.setdefault(row["tokenizer"], {})
        for L, c in decode_hist(row["token_length_hist"]).items():
            acc[L] = acc.get(L, 0) + c
    names = list(pooled)
    max_len = max((max(h) for h in pooled.values() if h), default=1)
    xs = np.arange(1, max_len + 1)
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(min(14, max(6, 0.4 * max_len + 2)), 4))
    for i, name in enumerate(names):
        h = pooled[name]
        total = sum(h.values()) or 1
        ax.bar(xs + (i - (len(names) - 1) / 2) * width, [h.get(int(x), 0) / total for x in xs],
               width=width, label=name)
    ax.set_xlabel("token length (bp)")
    ax.set_ylabel("share of tokens")
    ax.set_title("Token length distribution (" + ", ".join(sorted({r['task'] for r in rows})[:6])
                 + (" ..." if len({r['task'] for r in rows}) > 6 else "") + ")")
    ax.set_xticks(xs)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
