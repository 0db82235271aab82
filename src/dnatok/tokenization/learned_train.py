"""Training, saving and resuming the learned tokenizers ``vq`` / ``hrq`` (``learned``).

Data: the corpus sequences (upper-cased, at most ``max_corpus_bp``) are laid end to end;
the last ``valid_fraction`` of that concatenation (by position) is held out and never
trained on. Training windows of ``window`` bp start anywhere in the training part, never
span two sequences, and are skipped when more than ``max_n_fraction`` of them is N. The
batch of step t is drawn by ``numpy.random.default_rng([seed, 0, t])``; k-means
initialisation and dead-code restarts have their own (seed, step)-keyed generators, so a
resumed run draws exactly what an uninterrupted one does.

Saved directory (written atomically):
- ``dnatok_tokenizer.json``: format, kind, canonical spec, vocab_size, corpus fingerprint,
  ``codebook`` (held-out statistics, as in ``codebook_stats.tsv``) and ``training``.
- ``model.safetensors``: network weights, codebooks (``quant.{l}.embed`` etc.) and for hrq
  the joint vocabulary ``joint.codes`` [J, n_levels] (level codes of joint id j).
- ``training_curve.tsv``: every 50 steps and the last: loss, recon_loss, commitment,
  recon_acc, usage, perplexity (train batch; usage/perplexity averaged over levels), and
  per level commit_l{i}, usage_l{i}, perplexity_l{i}.
- ``codebook_stats.tsv``: per level, on the held-out windows: codes, usage, perplexity,
  commitment and residual error (see ``learned``); row "all": reconstruction accuracy
  (from the level codes, and for hrq from the joint ids).

Checkpoints: every ``checkpoint_every`` steps the state (weights, codebooks, optimizer,
curve) goes to ``<out_dir>.ckpt/state.pt`` (or ``checkpoint_dir``); a rerun with the same
spec and corpus resumes from it and ends with the same bytes as an uninterrupted run. It
is deleted once the tokenizer is saved. A checkpoint of another spec or corpus is ignored.

Device: spec key ``device`` ("auto": CUDA when available, else CPU; "cpu"; "cuda";
"cuda:N") is where training, the joint vocabulary and the held-out statistics run. It is
a run-time setting: it is not part of the checkpoint signature (a run may resume on
another device) and is left out of the saved spec, so on CPU "auto" and "cpu" write the
same bytes. On CPU training is deterministic (below); on CUDA it is not promised
(deterministic algorithms are not enforced there; TF32 is switched off inside training
but kernels differ from the CPU's and between runs), and ``training.device`` in
``dnatok_tokenizer.json`` records the CUDA device (absent for CPU runs). The checkpoint
holds CPU tensors either way. The returned tokenizer is loaded like ``load_tokenizer``
(CPU unless ``$DNATOK_TOKENIZER_DEVICE`` says otherwise).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dnatok.errors import UserError
from dnatok.io import atomic_path
from dnatok.tokenization.core import FORMAT_VERSION, META_FILE, _CorpusFingerprint, limit_bp
from dnatok.tokenization.learned import (N_CHANNELS, N_SPECIAL, WEIGHTS_FILE, LearnedTokenizer,
                                         VQDNANet, base_codes, fp32_on_cuda, level_codes,
                                         net_device, receptive_margin)
from dnatok.tokenization.learned_spec import RUNTIME_KEYS
from dnatok.tokenization.vocab import canonical_spec

CURVE_EVERY = 50
WARMUP = 50
JOINT_FIT_BP = 1_000_000
EVAL_BATCH = 256


class Interrupted(Exception):
    """Raised by ``train_learned(..., stop_after=k)`` after checkpointing step k (tests)."""


# ----------------------------------------------------------------------------- data


def split_corpus(seqs: list[str], valid_fraction: float) -> tuple[list[str], list[str]]:
    """Training and held-out pieces: the held-out part is the last ``valid_fraction`` of
    the concatenated corpus, by position."""
    total = sum(len(s) for s in seqs)
    cut = total - int(round(total * valid_fraction))
    train, valid, pos = [], [], 0
    for s in seqs:
        a = min(max(cut - pos, 0), len(s))
        if a:
            train.append(s[:a])
        if a < len(s):
            valid.append(s[a:])
        pos += len(s)
    return train, valid


def window_starts(codes: np.ndarray, lengths: np.ndarray, window: int, max_n: float,
                  stride: int = 1) -> np.ndarray:
    """Offsets into ``codes`` of the windows (every ``stride`` bp) that fit inside one
    sequence and have at most ``max_n`` N."""
    csum = np.concatenate([[0], np.cumsum(codes == 4)])
    out, off = [], 0
    for n in (int(x) for x in lengths):
        if n >= window:
            s = off + np.arange(0, n - window + 1, stride, dtype=np.int64)
            out.append(s[(csum[s + window] - csum[s]) <= max_n * window])
        off += n
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def gather(codes: np.ndarray, starts: np.ndarray, window: int) -> torch.Tensor:
    return torch.from_numpy(codes[starts[:, None] + np.arange(window)].astype(np.int64))


# ----------------------------------------------------------------------------- one step


def lr_at(spec: dict, step: int) -> float:
    lr, steps = spec["learning_rate"], spec["steps"]
    if step < WARMUP:
        return lr * (step + 1) / WARMUP
    t = (step - WARMUP) / max(1, steps - WARMUP)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def _usage(idx: torch.Tensor, size: int) -> tuple[float, float]:
    counts = torch.bincount(idx.reshape(-1), minlength=size).double()
    p = counts[counts > 0] / counts.sum()
    return float((counts > 0).double().mean()), float(torch.exp(-(p * p.log()).sum()))


def train_step(net, opt, spec, x, step) -> dict:
    """One optimisation step on codes ``x`` [B, W]; EMA codebook updates and restarts."""
    seed = spec["seed"]

    def init(level, h):
        net.quant[level].kmeans_init(h, np.random.default_rng([seed, 1, level]), spec["kmeans_iters"])

    for g in opt.param_groups:
        g["lr"] = lr_at(spec, step)
    logits, levels = net(x, init)
    recon = F.cross_entropy(logits.reshape(-1, N_CHANNELS), x.reshape(-1))
    commits = [F.mse_loss(h, q) for h, q, _ in levels]  # q: buffers, no gradient
    loss = recon + spec["beta"] * torch.stack(commits).sum()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    restarts = 0
    for lv, (h, _, idx) in enumerate(levels):
        flat = h.detach().reshape(-1, h.shape[-1])
        net.quant[lv].ema_update(flat, idx.reshape(-1), spec["ema_decay"], step)
        if step < 0.9 * spec["steps"]:
            restarts += net.quant[lv].restart_dead(
                flat, step, spec["dead_after"], np.random.default_rng([seed, 2, step, lv]))
    row = {"step": step + 1, "loss": loss.item(), "recon_loss": recon.item(),
           "commitment": float(sum(c.item() for c in commits)),
           "recon_acc": float((logits.argmax(-1) == x).double().mean())}
    stats = [_usage(idx, net.quant[lv].size) for lv, (_, _, idx) in enumerate(levels)]
    row["usage"] = float(np.mean([u for u, _ in stats]))
    row["perplexity"] = float(np.mean([p for _, p in stats]))
    for lv, (u, p) in enumerate(stats):
        row[f"commit_l{lv}"], row[f"usage_l{lv}"], row[f"perplexity_l{lv}"] = commits[lv].item(), u, p
    row["_restarts"] = restarts
    return row


# ----------------------------------------------------------------------------- checkpoints


def _signature(spec: dict, corpus: dict) -> str:
    keep = {k: v for k, v in spec.items() if k != "checkpoint_every" and k not in RUNTIME_KEYS}
    return hashlib.sha256(json.dumps([keep, corpus], sort_keys=True).encode()).hexdigest()


def _save_checkpoint(path: Path, state: dict) -> None:
    path.mkdir(parents=True, exist_ok=True)
    with atomic_path(path / "state.pt") as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path: Path, signature: str):
    f = path / "state.pt"
    if not f.is_file():
        return None
    try:
        state = torch.load(f, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated file cannot happen (atomic), a foreign one can
        print(f"dnatok: ignoring unreadable checkpoint {f}: {err}", file=sys.stderr)
        return None
    if state.get("signature") != signature:
        print(f"dnatok: ignoring checkpoint {f} of another spec or corpus", file=sys.stderr)
        return None
    return state


# ----------------------------------------------------------------------------- training


def _deterministic(device=None):
    """Context: deterministic torch algorithms on one thread, restoring the caller's
    settings. One thread: the result does not depend on the caller's thread count, and
    these small models train faster on one thread than on two contended ones. On CUDA
    deterministic algorithms are not enforced (index_add_ and friends have none there)."""
    class _Ctx:
        def __enter__(self):
            self.before = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
            torch.use_deterministic_algorithms(device is None or device.type == "cpu")
            torch.set_num_threads(1)

        def __exit__(self, *exc):
            torch.use_deterministic_algorithms(self.before[0])
            torch.set_num_threads(self.before[1])
    return _Ctx()


def _cpu_state(obj):
    """A state dict (nested) with every tensor copied to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu_state(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_state(v) for v in obj)
    return obj


def train_learned(spec: dict, out_dir, corpus, checkpoint_dir=None,
                  stop_after: int | None = None) -> LearnedTokenizer:
    """Train a ``vq``/``hrq`` tokenizer on ``corpus`` (DNA strings), save it to
    ``out_dir`` and return it loaded. ``stop_after``: checkpoint after that many steps
    and raise ``Interrupted`` (to test resuming)."""
    spec = canonical_spec(spec)
    out_dir = Path(out_dir)
    ckpt = Path(checkpoint_dir) if checkpoint_dir else out_dir.parent / (out_dir.name + ".ckpt")
    fp = _CorpusFingerprint()
    seqs = list(fp.wrap(limit_bp(corpus, spec.get("max_corpus_bp"))))
    if fp.bp == 0:
        raise UserError(f"{spec['kind']} training corpus is empty")
    train_seqs, valid_seqs = split_corpus(seqs, spec["valid_fraction"])
    codes, lengths = base_codes(train_seqs)
    starts = window_starts(codes, lengths, spec["window"], spec["max_n_fraction"])
    if starts.size == 0:
        raise UserError(f"no training window of {spec['window']} bp with <= "
                        f"{spec['max_n_fraction']:.0%} N in the corpus ({fp.bp} bp)")
    signature = _signature(spec, fp.as_dict())
    from dnatok.train.common import resolve_device

    device = resolve_device(spec["device"])
    with _deterministic(device), fp32_on_cuda(device):
        torch.manual_seed(spec["seed"])
        net = VQDNANet(spec).to(device)  # weights drawn on the CPU, then moved
        opt = torch.optim.AdamW(net.parameters(), lr=spec["learning_rate"],
                                weight_decay=spec["weight_decay"])
        curve, restarts, first = [], 0, 0
        state = _load_checkpoint(ckpt, signature)
        if state is not None:
            net.load_state_dict(state["net"])
            opt.load_state_dict(state["opt"])
            curve, restarts, first = state["curve"], state["restarts"], state["step"]
        net.train()
        for step in range(first, spec["steps"]):
            batch = np.random.default_rng([spec["seed"], 0, step]).integers(
                0, starts.size, spec["batch_size"])
            x = gather(codes, starts[batch], spec["window"]).to(device)
            row = train_step(net, opt, spec, x, step)
            restarts += row.pop("_restarts")
            if (step + 1) % CURVE_EVERY == 0 or step + 1 == spec["steps"]:
                curve.append(row)
            done = step + 1
            if done < spec["steps"] and (done % spec["checkpoint_every"] == 0 or done == stop_after):
                _save_checkpoint(ckpt, {"signature": signature, "step": done,
                                        "net": _cpu_state(net.state_dict()),
                                        "opt": _cpu_state(opt.state_dict()), "curve": curve,
                                        "restarts": restarts})
            if done == stop_after:
                raise Interrupted(f"stopped after {done} steps")
        net.eval()
        tok = _finish(spec, net, out_dir, fp.as_dict(), curve, restarts,
                      (codes, lengths), valid_seqs)
    shutil.rmtree(ckpt, ignore_errors=True)
    return tok


# ----------------------------------------------------------------------------- after training


@torch.inference_mode()
def _windows_pass(net, codes, starts, window):
    """Yield (x, levels) over batches of the windows at ``starts`` (no padding), on the
    device of ``net``."""
    device = net_device(net)
    for s in range(0, starts.size, EVAL_BATCH):
        x = gather(codes, starts[s:s + EVAL_BATCH], window).to(device)
        yield x, net.encode(x)


def fit_joint(spec: dict, net, codes, lengths) -> np.ndarray:
    """hrq joint vocabulary: the level-code tuples of the training windows, most frequent
    first (ties: tuple order), at most ``max_joint_codes`` [J, n_levels]."""
    w = spec["window"]
    starts = window_starts(codes, lengths, w, spec["max_n_fraction"], stride=w)
    cap = max(1, JOINT_FIT_BP // w)
    if starts.size > cap:  # evenly spaced, deterministic
        starts = starts[np.linspace(0, starts.size - 1, cap).round().astype(np.int64)]
    radix = np.array(net.levels, dtype=np.int64)
    keys = []
    for _, levels in _windows_pass(net, codes, starts, w):
        k = torch.zeros_like(levels[0][2])
        for r, (_, _, idx) in zip(radix.tolist(), levels):
            k = k * r + idx
        keys.append(k.reshape(-1).cpu().numpy())
    uniq, counts = np.unique(np.concatenate(keys), return_counts=True)
    order = np.lexsort((uniq, -counts))[:spec["max_joint_codes"]]
    kept = uniq[order]
    out = np.zeros((kept.size, radix.size), dtype=np.int64)
    for i in range(radix.size - 1, -1, -1):  # mixed radix -> tuple
        out[:, i] = kept % radix[i]
        kept = kept // radix[i]
    return out


def heldout_stats(spec: dict, net, valid_seqs: list[str], joint_codes) -> dict:
    """Per level usage, perplexity, commitment and residual error, and reconstruction
    accuracy, on the held-out part tiled into non-overlapping windows."""
    from dnatok.tokenization.learned import JointVocab

    w = spec["window"]
    codes, lengths = base_codes(valid_seqs) if valid_seqs else (np.zeros(0, np.uint8), np.zeros(0, np.int64))
    starts = window_starts(codes, lengths, w, spec["max_n_fraction"], stride=w)
    if starts.size == 0:
        return {"heldout_windows": 0}
    joint = None if joint_codes is None else JointVocab(joint_codes,
                                                        [q.embed.cpu().numpy() for q in net.quant])
    n_lv = len(net.levels)
    hist = [np.zeros(k, np.int64) for k in net.levels]
    resid, commit = np.zeros(n_lv), np.zeros(n_lv)
    hit = hit_ids = total = positions = 0
    for x, levels in _windows_pass(net, codes, starts, w):
        for lv, (h, q, idx) in enumerate(levels):
            hist[lv] += np.bincount(idx.reshape(-1).cpu().numpy(), minlength=net.levels[lv])
            resid[lv] += float(((h - q) ** 2).sum(-1).sum())
            commit[lv] += float(((h - q) ** 2).mean(-1).sum())
        acgt = x < 4
        pred = net.decode(torch.stack([q for _, q, _ in levels]).mean(0)).argmax(-1)
        hit += int(((pred == x) & acgt).sum())
        if joint is not None:
            tup = torch.stack([i for _, _, i in levels], -1).reshape(-1, n_lv).cpu().numpy()
            vec = torch.from_numpy(joint.vectors[joint.ids(tup)]).reshape(*x.shape, -1).to(x.device)
            hit_ids += int(((net.decode(vec).argmax(-1) == x) & acgt).sum())
        total += int(acgt.sum())
        positions += x.numel()
    out = {"heldout_windows": int(starts.size), "heldout_bp": positions,
           "recon_acc": hit / max(total, 1)}
    if joint is not None:
        out["recon_acc_joint_ids"] = hit_ids / max(total, 1)
    for lv, h in enumerate(hist):
        p = h[h > 0] / h.sum()
        out[f"l{lv}_codes"] = int(h.size)
        out[f"l{lv}_usage"] = float((h > 0).mean())
        out[f"l{lv}_perplexity"] = float(np.exp(-(p * np.log(p)).sum()))
        out[f"l{lv}_commitment"] = commit[lv] / positions
        out[f"l{lv}_residual_error"] = resid[lv] / positions
    return out


def _tsv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, delimiter="\t", lineterminator="\n",
                       extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def _stats_rows(stats: dict, n_levels: int) -> str:
    cols = ["level", "codes", "usage", "perplexity", "commitment", "residual_error", "recon_acc"]
    rows = [{"level": str(lv), **{c: stats.get(f"l{lv}_{c}", "") for c in cols[1:]}}
            for lv in range(n_levels)]
    rows.append({"level": "all", "recon_acc": stats.get("recon_acc", "")})
    if "recon_acc_joint_ids" in stats:
        rows.append({"level": "joint_ids", "codes": stats.get("joint_codes", ""),
                     "recon_acc": stats["recon_acc_joint_ids"]})
    return _tsv(rows, cols)


def _finish(spec, net, out_dir, corpus, curve, restarts, train_codes, valid_seqs):
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}
    joint = None
    if spec["kind"] == "hrq":
        joint = fit_joint(spec, net, *train_codes)
        tensors["joint.codes"] = torch.from_numpy(joint)
    stats = heldout_stats(spec, net, valid_seqs, joint)
    vocab = N_SPECIAL + (spec["codebook_size"] if joint is None else int(joint.shape[0]))
    if joint is not None:
        stats["joint_codes"] = int(joint.shape[0])
    final = {k: v for k, v in curve[-1].items()} if curve else {}
    training = {"steps": spec["steps"], "final": final, "dead_code_restarts": restarts,
                "receptive_margin_bp": receptive_margin(spec)}
    device = net_device(net)
    if device.type != "cpu":  # CPU runs: no entry, so their bytes do not depend on "device"
        training["device"] = str(device)
    saved_spec = {k: v for k, v in spec.items() if k not in RUNTIME_KEYS}
    meta = {"format": FORMAT_VERSION, "kind": spec["kind"], "spec": saved_spec,
            "vocab_size": vocab, "corpus": corpus, "codebook": stats, "training": training}
    columns = list(curve[0]) if curve else ["step"]
    with atomic_path(out_dir, is_dir=True) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_FILE))
        (tmp / "training_curve.tsv").write_text(_tsv(curve, columns))
        (tmp / "codebook_stats.tsv").write_text(_stats_rows(stats, len(net.levels)))
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return LearnedTokenizer(out_dir, meta)
