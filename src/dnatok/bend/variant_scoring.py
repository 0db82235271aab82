"""Zero-shot variant-effect scoring, BEND style (``dnatok bend score-variants``).

For every SNV the reference window and the same window with the centre base swapped to
the alternative allele are embedded and upsampled to bases (:mod:`dnatok.bend.embeddings`);
the score is the cosine distance ``1 - cos`` between the two vectors at the variant's
base. Windows (``context_bp`` = c, BEND's 256):

- bidirectional models: ``genome[pos - c : pos + c + 1]``, the variant at index c;
- causal models (next-token: mamba, hyena, GPT-style): ``genome[pos - 2c : pos + 1]``,
  left context only, the variant the last base (BEND gives causal models 512 bp left).

Windows are clipped at chromosome ends (the variant's index moves accordingly). The
AUROC of the scores against the labels is the summary (BEND's metric). The one-hot
"embedder" is rejected: its distance is the same for every SNV.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from dnatok.errors import UserError
from dnatok.io import atomic_path, read_json, write_json

TSV_COLUMNS = ("chromosome", "start", "end", "ref", "alt", "label", "id", "gene", "kind")
TABLE_COLUMNS = ("model", "tokenizer", "auroc", "n_pos", "n_neg", "causal", "context_rule", "upsample", "scores")


def cosine_distance(a, b) -> float:
    """``1 - cos(a, b)``; 0 for identical non-zero vectors."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 0.0 if np.array_equal(a, b) else 1.0
    return float(1.0 - np.clip(a @ b / (na * nb), -1.0, 1.0))


def window(chrom_seq, pos: int, context_bp: int, causal: bool) -> tuple[str, int, int]:
    """(window sequence, index of the variant in it, window start) of one SNV."""
    n = len(chrom_seq)
    start = max(0, pos - (2 * context_bp if causal else context_bp))
    end = pos + 1 if causal else min(n, pos + context_bp + 1)
    return str(chrom_seq[start:end]).upper(), pos - start, start


def summary_path(out_tsv) -> Path:
    """Where the summary JSON of a scores TSV goes: same name, ``.json``."""
    out_tsv = Path(out_tsv)
    return out_tsv.with_suffix(".json") if out_tsv.suffix == ".tsv" else Path(f"{out_tsv}.json")


def _window_pairs(variants, fa, context_bp: int, causal: bool) -> list[tuple[str, str, int]]:
    """(ref window, alt window, variant index) per variant of the open genome ``fa`` (refs
    already checked)."""
    from dnatok.bend.format import resolve_chrom

    names = set(fa.keys())
    pairs = []
    for v in variants:
        key = resolve_chrom(v.chrom, names)
        seq, i, _ = window(fa[key], v.pos, context_bp, causal)
        pairs.append((seq, seq[:i] + v.alt.upper() + seq[i + 1:], i))
    return pairs


def _scores(emb, variants, pairs, batch_size: int) -> list[float]:
    scores = []
    for at in range(0, len(pairs), batch_size):
        chunk, vs = pairs[at:at + batch_size], variants[at:at + batch_size]
        seqs = [p[0] for p in chunk] + [p[1] for p in chunk]
        ids = [f"{v.id}(ref)" for v in vs] + [f"{v.id}(alt)" for v in vs]
        out = emb.embed(seqs, ids)
        for j, (_, _, i) in enumerate(chunk):
            scores.append(cosine_distance(out[j][i], out[len(chunk) + j][i]))
    return scores


def _write_scores(out_tsv: Path, variants, scores) -> None:
    with atomic_path(out_tsv) as tmp:
        with open(tmp, "w") as fh:
            fh.write("\t".join(TSV_COLUMNS + ("score",)) + "\n")
            for v, s in zip(variants, scores):
                fh.write("\t".join([v.chrom, str(v.pos), str(v.pos + 1), v.ref, v.alt, str(int(v.label)),
                                    str(v.id), v.gene, v.kind, repr(float(s))]) + "\n")


def score_variants(model_dir, variants_tsv, genome_fasta, out_tsv, tokenizer=None, context_bp: int = 256,
                   causal: bool | None = None, device: str = "auto", batch_size: int = 16) -> dict:
    """Score every variant (module docstring); writes ``out_tsv`` (the variants with a
    ``score`` column) and its :func:`summary_path` (AUROC and the context rule); returns
    the summary."""
    from sklearn.metrics import roc_auc_score

    from dnatok.bend.embeddings import ONEHOT, Embedder
    from dnatok.bend.format import _open
    from dnatok.bend.variants import read_variants

    if str(model_dir) == ONEHOT:
        raise UserError("zero-shot variant scoring needs a language model: with the one-hot 'embedder' "
                        "every SNV has the same cosine distance")
    if int(context_bp) < 1:
        raise UserError(f"context_bp must be >= 1, got {context_bp}")
    fa = _open(genome_fasta)  # opened once: the refs are checked and the windows cut from it
    variants = read_variants(variants_tsv, genome=fa)
    emb = Embedder(model_dir, tokenizer, device)
    is_causal = emb.causal if causal is None else bool(causal)
    pairs = _window_pairs(variants, fa, int(context_bp), is_causal)
    scores = _scores(emb, variants, pairs, int(batch_size))
    labels = np.array([int(v.label) for v in variants])
    n_pos, n_neg = int((labels == 1).sum()), int((labels == 0).sum())
    auroc = float(roc_auc_score(labels, scores)) if n_pos and n_neg else None
    rule = (f"causal: {2 * int(context_bp)} bp left context + the variant (index {2 * int(context_bp)})"
            if is_causal else f"bidirectional: {int(context_bp)} bp each side (index {int(context_bp)})")
    summary = {"benchmark": "bend", "model": str(model_dir), "tokenizer": emb.kind,
               "upsample": emb.mode, "variants": str(variants_tsv), "n": len(variants), "n_pos": n_pos,
               "n_neg": n_neg, "auroc": auroc, "causal": is_causal, "context_bp": int(context_bp),
               "context_rule": rule, "score": "cosine distance of ref/alt embeddings at the variant base",
               "device": str(emb.device)}
    out_tsv = Path(out_tsv)
    _write_scores(out_tsv, variants, scores)
    write_json(summary_path(out_tsv), summary)
    return summary


def variant_table(scores_tsvs, names, out_tsv) -> list[dict]:
    """One row per scored model (``names``: "model/tokenizer" of each scores TSV, in order)
    from the summaries beside the scores: AUROC, counts and the context rule."""
    if len(names) != len(scores_tsvs):
        raise UserError(f"{len(names)} names for {len(scores_tsvs)} score files")
    rows = []
    for path, name in zip(scores_tsvs, names):
        model, _, tokenizer = str(name).partition("/")
        s = read_json(summary_path(path), f"{path}: no summary {summary_path(path).name} beside it")
        rows.append({"model": model, "tokenizer": tokenizer, "auroc": s["auroc"], "n_pos": s["n_pos"],
                     "n_neg": s["n_neg"], "causal": s["causal"], "context_rule": s["context_rule"],
                     "upsample": s["upsample"], "scores": str(path)})
    with atomic_path(out_tsv) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=TABLE_COLUMNS, delimiter="\t", lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    return rows
