"""Per-base embeddings of a BEND task for the probe (``dnatok bend embed``).

Every record's sequence is tokenized, run through a backbone (a model pretrained here or a
released checkpoint, through :mod:`dnatok.embed`) and brought to nucleotide resolution:

- ``"repeat"``: each token's last hidden state is repeated over the bases the token owns
  (BPE, non-overlapping k-mers, overlapping k-mers: :func:`dnatok.embed.owned_spans`
  gives every token a share of the bases; for DNABERT-style overlapping k-mers each
  window owns its first base and the last window the rest, so both edges are right);
- ``"none"``: one token per base is required (char and learned per-base tokenizers such
  as VQ/HRQ); a token owning more or fewer bases is an error.

Special tokens own no base and are dropped. The owned spans must tile ``[0, length)``
exactly; otherwise the error names the sequence (BEND silently skips such samples).

Long sequences are cut into chunks of ``chunk_bp`` bases, embedded independently and
concatenated (BEND's behaviour: no context across chunks). The default chunk is the
model's input limit in bases when it has one (HyenaDNA's positional table, learned
position embeddings), otherwise no chunking.

``model_dir="onehot"`` is BEND's supervised-baseline input: 5 channels in BEND's alphabet
order A C G N T (any other letter counts as N).

Cache layout (``out_dir``, written atomically as one folder):

- ``meta.json``: model, tokenizer kind, upsample mode, chunk_bp, dim, dtype, digests of
  the model files, tokenizer files, task files and extracted sequences, counts, wall_s;
- per split ``{split}.emb.npy``: all bases of the split's records, flat ``[sum L, D]``
  (memory-mappable), and ``{split}.index.npz``: ``offsets`` (records + 1), ``ids``,
  ``rows`` (the records' row numbers in the task).

A cache whose key (model, tokenizer, task, sequences, chunk, dtype, splits) matches is
reused; any difference rebuilds it.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from dnatok.errors import UserError
from dnatok.io import atomic_path, read_json
from dnatok.tokenization.learned_spec import LEARNED_KINDS

UPSAMPLE_MODES = ("repeat", "none")
PER_BASE_KINDS = frozenset({"char", *LEARNED_KINDS})
ONEHOT = "onehot"
ONEHOT_ALPHABET = "ACGNT"          # BEND's LabelEncoder order
DTYPES = ("float16", "float32")
META_FILE = "meta.json"
CAUSAL_RELEASED = frozenset({"hyena", "gpt_neo"})   # next-token released families
CACHE_FORMAT = 1


# --------------------------------------------------------------------------- upsampling
def upsample_mode(tokenizer) -> str:
    """``"none"`` for per-base tokenizers (char, vq, hrq), ``"repeat"`` for the rest
    (k-mers, BPE, released multi-base tokenizers: dnabert2, ntv2, dnabert6, gpt2)."""
    kind = getattr(tokenizer, "kind", None)
    if not isinstance(kind, str):
        raise UserError(f"tokenizer {tokenizer!r} has no kind: cannot choose an upsampling mode")
    return "none" if kind in PER_BASE_KINDS else "repeat"


def upsample(hidden, own_start, own_end, length: int, mode: str, where: str) -> np.ndarray:
    """``[length, D]``: each token's vector over the bases it owns (zero-width tokens are
    dropped). The owned spans must tile ``[0, length)``; ``mode="none"`` also requires one
    base per real token. Errors name ``where`` (the sequence)."""
    if mode not in UPSAMPLE_MODES:
        raise UserError(f"unknown upsample mode {mode!r}; expected one of {', '.join(UPSAMPLE_MODES)}")
    hidden = np.asarray(hidden)
    own_s = np.asarray(own_start, dtype=np.int64)
    own_e = np.asarray(own_end, dtype=np.int64)
    if hidden.ndim != 2 or not (hidden.shape[0] == own_s.size == own_e.size):
        raise UserError(f"{where}: {hidden.shape[0] if hidden.ndim else 0} vectors for "
                        f"{own_s.size} token spans")
    width = own_e - own_s
    if (width < 0).any():
        raise UserError(f"{where}: a token span ends before it starts")
    real = width > 0
    s, e = own_s[real], own_e[real]
    if s.size == 0 or s[0] != 0 or e[-1] != length or (s[1:] != e[:-1]).any():
        got = int(width.sum())
        raise UserError(f"{where}: the tokens' owned spans do not tile the sequence's {length} bases "
                        f"(they cover {got} bases" + (f", from {int(s[0])} to {int(e[-1])})" if s.size else ")"))
    if mode == "none" and (width[real] != 1).any():
        bad = int(np.flatnonzero(real)[np.flatnonzero(width[real] != 1)[0]])
        raise UserError(f"{where}: upsample mode 'none' needs one token per base, but token {bad} "
                        f"owns {int(width[bad])} bases")
    return np.repeat(hidden[real], width[real], axis=0)


def onehot(seq: str) -> np.ndarray:
    """``[len, 5]`` float32 one-hot over A C G N T (other letters: N)."""
    codes = np.full(256, ONEHOT_ALPHABET.index("N"), dtype=np.int64)
    for i, c in enumerate(ONEHOT_ALPHABET):
        codes[ord(c)] = codes[ord(c.lower())] = i
    idx = codes[np.frombuffer(seq.encode("latin-1"), dtype=np.uint8)]
    out = np.zeros((len(seq), len(ONEHOT_ALPHABET)), dtype=np.float32)
    out[np.arange(len(seq)), idx] = 1.0
    return out


# --------------------------------------------------------------------------- embedders
class Embedder:
    """Sequences -> per-base ``[L, D]`` float32 arrays (one model, loaded once)."""

    def __init__(self, model_dir, tokenizer=None, device="auto", add_special_tokens: bool | None = None):
        from dnatok.embed import load_for_embedding
        from dnatok.train.common import resolve_device

        self.model_dir = str(model_dir)
        if self.model_dir == ONEHOT:
            self.backbone = self.tok = None
            self.source = {"source": ONEHOT}
            self.kind, self.mode, self.dim, self.special = ONEHOT, "none", len(ONEHOT_ALPHABET), False
            self.token_limit, self.causal = None, False
            self.device = "cpu"
            return
        self.backbone, self.tok, self.source = load_for_embedding(model_dir, tokenizer)
        self.kind = getattr(self.tok, "kind", type(self.tok).__name__)
        self.mode = upsample_mode(self.tok)
        self.special = (self.source["source"] == "released") if add_special_tokens is None \
            else bool(add_special_tokens)
        self.token_limit, self.causal = _limits(model_dir, self.backbone, self.source)
        self.device = resolve_device(device)
        self.backbone.to(self.device).eval()
        self.dim = None

    def default_chunk_bp(self) -> int | None:
        """The model's input limit in bases (None: no limit, no chunking)."""
        if self.token_limit is None:
            return None
        n = self.token_limit - (2 if self.special else 0)
        kind, spec = self.kind, getattr(self.tok, "spec", {}) or {}
        if kind == "ntv2" or (kind == "kmer" and spec.get("stride", 1) > 1):
            bases = n * (6 if kind == "ntv2" else int(spec["k"]))
        elif kind == "dnabert6" or kind == "kmer":
            bases = n + (6 if kind == "dnabert6" else int(spec["k"])) - 1
        else:                      # char, BPE: at least one base per token
            bases = n
        if bases < 1:
            raise UserError(f"{self.model_dir}: input limit of {self.token_limit} tokens leaves no base")
        return int(bases)

    def embed(self, seqs: list[str], names: list[str]) -> list[np.ndarray]:
        if self.model_dir == ONEHOT:
            return [onehot(s) for s in seqs]
        from dnatok.embed import _hidden_states, _token_rows

        rows = _token_rows(self.tok, seqs, names, self.special)
        if self.token_limit is not None:
            for r, name in zip(rows, names):
                if r[0].size > self.token_limit:
                    raise UserError(f"sequence {name!r}: {r[0].size} tokens exceed the model's limit of "
                                    f"{self.token_limit}; use a smaller --chunk-bp")
        out = []
        for seq, name, r, h in zip(seqs, names, rows, _hidden_states(self.backbone, rows, self.tok.pad_id,
                                                                   self.device)):
            out.append(upsample(h, r[3], r[4], len(seq), self.mode, f"sequence {name!r}"))
        if out and self.dim is None:
            self.dim = int(out[0].shape[1])
        return out


def _limits(model_dir, backbone, source) -> tuple[int | None, bool]:
    """(input limit in tokens or None, causal?) of a loaded model."""
    from types import SimpleNamespace

    from dnatok import released
    from dnatok.architectures import OBJECTIVE, max_tokens
    from dnatok.models import arch_of

    if source["source"] == "released":
        return released.token_limit(model_dir), source.get("family") in CAUSAL_RELEASED
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    arch = arch_of(SimpleNamespace(model_type=cfg["model_type"]))
    return max_tokens(arch, cfg), OBJECTIVE.get(arch) == "clm"


# --------------------------------------------------------------------------- digests
def _sha_files(paths) -> str:
    h = hashlib.sha256()
    for p in paths:
        p = Path(p)
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def dir_digest(path) -> str:
    """sha256 over every regular file under ``path`` (relative names and contents)."""
    path = Path(path)
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file() and "__pycache__" not in q.parts):
        h.update(str(p.relative_to(path)).encode() + b"\0")
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def task_digest(task) -> str:
    """sha256 of a task's files: its bed, hdf5 (per-base tasks) and task.json."""
    paths = [Path(task.meta["bed_path"])]
    if task.meta.get("hdf5_path"):
        paths.append(Path(task.meta["hdf5_path"]))
    tj = paths[0].parent / "task.json"
    if tj.is_file():
        paths.append(tj)
    return _sha_files(paths)


def _seq_digest(seqs: list[str]) -> str:
    h = hashlib.sha256()
    for s in seqs:
        h.update(s.encode() + b"\n")
    return h.hexdigest()


# --------------------------------------------------------------------------- task embedding
def _read_task(task_dir):
    from dnatok.bend.format import read_task

    return read_task(task_dir)


def embed_task(model_dir, task_dir, genome_fasta, out_dir, tokenizer=None, chunk_bp: int | None = None,
               batch_size: int = 8, device: str = "auto", splits=("train", "valid", "test"),
               dtype: str = "float16") -> dict:
    """Per-base embeddings of every record of ``splits`` (see module docstring); returns
    the cache's meta (``meta["reused"]`` says whether an existing cache was kept)."""
    t0 = time.time()
    if dtype not in DTYPES:
        raise UserError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if int(batch_size) < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}")
    task = _read_task(task_dir)
    splits = tuple(splits)
    rows, seqs = _split_sequences(task, genome_fasta, splits)
    key = _cache_key(model_dir, tokenizer, task, seqs, splits, chunk_bp, dtype)
    out_dir = Path(out_dir)
    old = _read_meta(out_dir)
    if old is not None and old.get("key") == key and all(
            (out_dir / f"{s}.emb.npy").is_file() and (out_dir / f"{s}.index.npz").is_file() for s in splits):
        return {**old, "reused": True}

    emb = Embedder(model_dir, tokenizer, device)
    chunk = emb.default_chunk_bp() if chunk_bp is None else int(chunk_bp)
    if chunk is not None and chunk < 1:
        raise UserError(f"chunk_bp must be >= 1, got {chunk}")
    counts = {}
    with atomic_path(out_dir, is_dir=True) as tmp:
        for s in splits:
            ids = [task.records[i].id for i in rows[s]]
            counts[s] = _embed_split(emb, seqs[s], ids, rows[s], chunk, int(batch_size), dtype, tmp, s)
        meta = {
            "key": key, "model": key["model"], "tokenizer": emb.kind,
            "tokenizer_dir": None if tokenizer is None else str(tokenizer),
            "source": emb.source, "upsample": emb.mode, "chunk_bp": chunk, "dim": emb.dim,
            "dtype": dtype, "task": task.name, "task_dir": str(Path(task_dir).resolve()),
            "task_kind": task.kind, "task_digest": key["task_digest"], "counts": counts,
            "special_tokens": emb.special, "causal": emb.causal, "device": str(emb.device),
            "wall_s": round(time.time() - t0, 3),
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return {**meta, "reused": False}


def _split_sequences(task, genome_fasta, splits) -> tuple[dict[str, list[int]], dict[str, list[str]]]:
    """({split: task rows}, {split: their sequences}); every split must have records."""
    rows = {s: list(task.split(s)) for s in splits}
    for s, r in rows.items():
        if not r:
            raise UserError(f"task {task.name}: split {s!r} has no records")
    return rows, {s: task.sequences(genome_fasta, r) for s, r in rows.items()}


def _cache_key(model_dir, tokenizer, task, seqs, splits, chunk_bp, dtype) -> dict:
    """What a cache must match to be reused: model, tokenizer, task, sequences, chunk, dtype,
    splits (the model folder must exist unless it is ``onehot``)."""
    onehot_model = str(model_dir) == ONEHOT
    if not onehot_model and not Path(model_dir).is_dir():
        raise UserError(f"model folder {model_dir} does not exist (or use 'onehot')")
    return {
        "format": CACHE_FORMAT,
        "model": ONEHOT if onehot_model else str(Path(model_dir).resolve()),
        "model_digest": ONEHOT if onehot_model else dir_digest(model_dir),
        "tokenizer_digest": dir_digest(tokenizer) if tokenizer is not None else None,
        "task": task.name,
        "task_digest": task_digest(task),
        "sequences_digest": {s: _seq_digest(seqs[s]) for s in splits},
        "chunk_bp_requested": chunk_bp,
        "dtype": dtype,
        "splits": list(splits),
    }


def _read_meta(out_dir: Path) -> dict | None:
    path = out_dir / META_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def _embed_split(emb: Embedder, seqs, ids, rows, chunk, batch_size, dtype, folder: Path, split: str) -> dict:
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    pieces = []                      # (flat offset, sequence index, chunk start, chunk end)
    for i, n in enumerate(lengths.tolist()):
        step = n if chunk is None else chunk
        for a in range(0, n, max(1, step)):
            pieces.append((int(offsets[i]) + a, i, a, min(n, a + step)))
    order = sorted(range(len(pieces)), key=lambda j: (pieces[j][3] - pieces[j][2], j))
    out = None
    for at in range(0, len(order), batch_size):
        batch = [pieces[j] for j in order[at:at + batch_size]]
        names = [ids[i] if (a, b) == (0, lengths[i]) else f"{ids[i]}[{a}:{b}]" for _, i, a, b in batch]
        vecs = emb.embed([seqs[i][a:b] for _, i, a, b in batch], names)
        if out is None:
            out = np.lib.format.open_memmap(folder / f"{split}.emb.npy", mode="w+", dtype=dtype,
                                            shape=(int(offsets[-1]), vecs[0].shape[1]))
        for (flat, _, a, b), v in zip(batch, vecs):
            out[flat:flat + (b - a)] = v.astype(dtype)
    out.flush()
    del out
    np.savez(folder / f"{split}.index.npz", offsets=offsets, ids=np.asarray(ids),
             rows=np.asarray(rows, dtype=np.int64))
    return {"records": len(seqs), "bases": int(offsets[-1]), "chunks": len(pieces)}


# --------------------------------------------------------------------------- loading
def load_embeddings(emb_dir, split: str, task=None) -> tuple[list[np.ndarray], list[str]]:
    """(per-record ``[L, D]`` arrays (memory-mapped views), ids) of one split, checked
    against the task's records and labels (``task``: a BendTask, else the one in meta)."""
    emb_dir = Path(emb_dir)
    meta = read_json(emb_dir / META_FILE, f"{emb_dir}: not an embedding folder (no {META_FILE})")
    npy, idx = emb_dir / f"{split}.emb.npy", emb_dir / f"{split}.index.npz"
    if not npy.is_file() or not idx.is_file():
        raise UserError(f"{emb_dir}: no embeddings of split {split!r} (have {meta.get('key', {}).get('splits')})")
    if task is None:
        task = _read_task(meta["task_dir"])
    flat = np.load(npy, mmap_mode="r")
    z = np.load(idx)
    offsets, ids, rows = z["offsets"], [str(i) for i in z["ids"]], z["rows"]
    if offsets[-1] != flat.shape[0]:
        raise UserError(f"{npy}: {flat.shape[0]} vectors, index says {int(offsets[-1])}")
    out = []
    for k, (name, row) in enumerate(zip(ids, rows.tolist())):
        length = int(offsets[k + 1] - offsets[k])
        if row >= len(task.records) or task.records[row].id != name:
            raise UserError(f"sequence {name!r}: not row {row} of task {task.name} (embeddings and task differ)")
        rec = task.records[row]
        want = rec.end - rec.start
        if task.kind == "per_base":
            want_lab = len(task.labels[row])
            if want_lab != want:
                raise UserError(f"sequence {name!r}: {want_lab} labels for {want} bases")
        if length != want:
            raise UserError(f"sequence {name!r}: {length} embedded bases, the task has {want}")
        out.append(flat[offsets[k]:offsets[k + 1]])
    return out, ids
