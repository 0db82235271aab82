"""``dnatok embed``: a backbone's last hidden state per token, with each token's bases.

For any model the pipeline has: a model pretrained here (``dnatok pretrain``'s folder
plus its tokenizer folder) or a released checkpoint (its own tokenizer). Output, one
``.npz`` (all arrays flat over the tokens of every sequence, in input order):

- ``hidden`` (tokens, dim) float32: last hidden states; ``token_ids`` (tokens,);
- ``offsets`` (sequences + 1,): sequence i's tokens are ``offsets[i]:offsets[i+1]``;
- ``start``, ``end``: the bases [start, end) of its sequence each token spells (a special
  token is zero-width; overlapping k-mers have overlapping windows);
- ``own_start``, ``own_end``: a partition of each sequence among its tokens — every base
  belongs to exactly one token (a token owns the bases from its window start up to the
  next token's window start; the last one up to its window end), so upsampling to base
  resolution repeats a vector over the bases it owns;
- ``ids`` (sequences,): the input ids; ``meta``: JSON (model, tokenizer, dim, counts).

A sequence whose tokens do not cover it exactly (e.g. shorter than one k-mer) is an error
naming it, never a silent skip.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from dnatok.errors import DataError, UserError
from dnatok.io import atomic_path


def read_sequences(path) -> tuple[list[str], list[str]]:
    """(ids, sequences) of a CSV with a ``sequence`` column (``id`` optional: row numbers)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"input {path} does not exist")
    ids, seqs = [], []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "sequence" not in reader.fieldnames:
            raise DataError(path, 1, f"needs a 'sequence' column (header: {reader.fieldnames})")
        for line, row in enumerate(reader, 2):
            seq = (row.get("sequence") or "").strip()
            if not seq:
                raise DataError(path, line, "empty sequence")
            ids.append(row.get("id") or str(line - 2))
            seqs.append(seq)
    if not seqs:
        raise DataError(path, None, "no sequences")
    return ids, seqs


def owned_spans(starts: np.ndarray, ends: np.ndarray, length: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Each token's share of the bases (see module docstring); the shares of the non-special
    tokens must tile [0, length) exactly."""
    real = ends > starts
    own_s, own_e = starts.copy(), starts.copy()          # specials own nothing
    idx = np.flatnonzero(real)
    if idx.size == 0:
        raise UserError(f"{where}: no token covers any base (sequence of {length} bases)")
    own_s[idx] = starts[idx]
    own_e[idx[:-1]] = starts[idx[1:]]
    own_e[idx[-1]] = ends[idx[-1]]
    if own_s[idx[0]] != 0 or own_e[idx[-1]] != length or (own_e[idx] <= own_s[idx]).any():
        raise UserError(f"{where}: the tokens' spans do not cover the {length} bases exactly once "
                        f"(first starts at {int(own_s[idx[0]])}, last ends at {int(own_e[idx[-1]])})")
    return own_s, own_e


def load_for_embedding(model_dir, tokenizer=None):
    """(backbone module, tokenizer, description) for a released checkpoint or a model of ours."""
    from dnatok import released
    from dnatok.released.base import read_release_config

    cfg = read_release_config(model_dir)
    if not str(cfg.get("model_type", "")).startswith("dnatok_"):
        model, report = released.load_classifier(model_dir, num_labels=2)
        tok = released.load_tokenizer(model_dir) if tokenizer is None else _our_tokenizer(tokenizer)
        return model.backbone, tok, {"source": "released", "family": report["family"]}
    from dnatok.models import load_model

    if tokenizer is None:
        raise UserError(f"{model_dir} is a model trained here: give its tokenizer folder with --tokenizer")
    model = load_model(model_dir)
    return model.backbone, _our_tokenizer(tokenizer), {"source": "dnatok", "model_type": cfg["model_type"]}


def _our_tokenizer(path):
    from dnatok.released.tokenizers import load_saved
    from dnatok.tokenization import load_tokenizer

    meta = Path(path) / "dnatok_tokenizer.json"
    if meta.is_file() and json.loads(meta.read_text()).get("kind") == "released":
        return load_saved(path)
    return load_tokenizer(path)


def _token_rows(tok, seqs: list[str], ids: list[str], special: bool) -> list[tuple]:
    """Per sequence: (token ids, start, end, own_start, own_end), checked against encode_batch."""
    rows = []
    for name, seq in zip(ids, seqs):
        tid, start, end = (np.asarray(a, dtype=np.int64) for a in tok.spans(seq, add_special_tokens=special))
        own_s, own_e = owned_spans(start, end, len(seq), f"sequence {name!r}")
        rows.append((tid, start, end, own_s, own_e))
    enc, mask = tok.encode_batch(seqs, 2**31 - 1, add_special_tokens=special)
    for (tid, *_), row, m, name in zip(rows, enc, mask, ids):
        if not np.array_equal(row[m.astype(bool)], tid):
            raise UserError(f"sequence {name!r}: the tokenizer's spans and its encoding disagree "
                            f"({tid.size} vs {int(m.sum())} tokens)")
    return rows


def _hidden_states(backbone, rows: list[tuple], pad_id: int, device) -> list[np.ndarray]:
    import torch

    width = max(r[0].size for r in rows)
    ids = torch.full((len(rows), width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :r[0].size] = torch.from_numpy(r[0])
        mask[i, :r[0].size] = 1
    with torch.no_grad():
        h = backbone(ids.to(device), mask.to(device)).float().cpu().numpy()
    return [h[i, :r[0].size] for i, r in enumerate(rows)]


def embed(model_dir, input_csv, out_npz, tokenizer=None, batch_size: int = 16, device: str = "auto",
          add_special_tokens: bool | None = None) -> dict:
    """Write the per-token last hidden states of every sequence in ``input_csv`` to
    ``out_npz`` (see module docstring); returns the metadata. ``add_special_tokens``:
    None = a released model's own specials, none for ours (how the study fine-tuned them)."""
    import torch

    from dnatok.train.common import resolve_device

    names, seqs = read_sequences(input_csv)
    backbone, tok, source = load_for_embedding(model_dir, tokenizer)
    special = (source["source"] == "released") if add_special_tokens is None else bool(add_special_tokens)
    dev = resolve_device(device)
    backbone.to(dev).eval()
    parts = {k: [] for k in ("hidden", "token_ids", "start", "end", "own_start", "own_end")}
    counts = []
    for at in range(0, len(seqs), int(batch_size)):
        rows = _token_rows(tok, seqs[at:at + batch_size], names[at:at + batch_size], special)
        for r, h in zip(rows, _hidden_states(backbone, rows, tok.pad_id, dev)):
            for key, value in zip(("token_ids", "start", "end", "own_start", "own_end"), r):
                parts[key].append(value)
            parts["hidden"].append(h.astype(np.float32))
            counts.append(r[0].size)
    meta = {**source, "model": str(model_dir), "tokenizer": getattr(tok, "kind", type(tok).__name__),
            "special_tokens": special, "dim": int(parts["hidden"][0].shape[1]), "sequences": len(seqs),
            "tokens": int(sum(counts)), "device": str(dev), "torch": torch.__version__}
    out_npz = Path(out_npz)
    with atomic_path(out_npz) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{k: np.concatenate(v) for k, v in parts.items()},
                     offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                     ids=np.asarray(names), meta=np.asarray(json.dumps(meta, sort_keys=True)))
    return meta


def add_commands(sub) -> None:
    p = sub.add_parser("embed", help="per-token last hidden states of a model (ours or released) for a CSV",
                       description="Writes hidden states, token ids and each token's span in bases "
                                   "(window and owned share) for every sequence of --input to --out (.npz).")
    p.add_argument("--model", required=True, help="released checkpoint folder, or a model folder from dnatok pretrain")
    p.add_argument("--input", required=True, help="CSV with a 'sequence' column (and optionally 'id')")
    p.add_argument("--out", required=True, help="output .npz (written atomically)")
    p.add_argument("--tokenizer", help="tokenizer folder (required for models trained here)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto")
    p.add_argument("--special-tokens", choices=("auto", "yes", "no"), default="auto",
                   help="add the tokenizer's special tokens (auto: a released model's own, none for ours)")
    p.set_defaults(func=_embed)


def _embed(args) -> int:
    special = {"auto": None, "yes": True, "no": False}[args.special_tokens]
    meta = embed(args.model, args.input, args.out, args.tokenizer, args.batch_size, args.device, special)
    print(f"embedded {meta['sequences']} sequences ({meta['tokens']} tokens, dim {meta['dim']}) -> {args.out}")
    return 0
