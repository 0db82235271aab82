"""Learned tokenizers ``vq`` and ``hrq``: VQDNA (Li et al., ICML 2024) at CPU scale.

One token per base: a stride-1 convolutional encoder maps every position of the one-hot
sequence to a vector, a vector quantizer replaces it by its nearest code, and the code
index is the token. No implementation or weights were released (VQDNA repo: README only),
so this follows the paper's text; choices it leaves open are marked CHOICE and are spec
keys where that is meaningful (``learned_spec.COMMON`` / ``PER_KIND`` hold the defaults).

Network (``VQDNANet``)
    one-hot [A, C, G, T, N] (any other character, lower case upper-cased first, is channel
    N; whitespace is an error) -> Conv1d stem (k5, stride 1) + LayerNorm + GELU ->
    ``depth`` ConvNeXt-1D blocks (depth-wise conv k7, LayerNorm, MLP x4, residual) ->
    per level a Linear projection to ``code_dim`` -> quantizer -> mirrored decoder
    (Linear code_dim -> width, ``depth`` ConvNeXt-1D blocks, LayerNorm, Linear -> 5
    logits). CHOICE: the paper's decoder uses transposed convs; at stride 1 a transposed
    conv is an ordinary conv, so plain (depth-wise) convs are used. Paper scale is width
    256, 6 blocks, dim 384, 512 codes; the defaults here are the fact sheet's CPU version
    (width 64, 3 blocks, dim 32, K=64 / levels 16-32-64, ~0.2 M parameters). Encoder
    receptive field: +-(2 + 3*depth) bp (+-11 bp at depth 3).
Quantizers (``EmaCodebook``)
    nearest code by squared L2 (ties: lowest index), straight-through estimator. Code
    vectors are buffers (``requires_grad=False``), never touched by the optimizer: EMA of
    per-code counts and vector sums (decay ``ema_decay``, Laplace smoothing eps 1e-5).
    Initialised by k-means (``kmeans_iters`` Lloyd iterations from K distinct random
    points, numpy Generator seeded by the spec seed) on the first batch's encodings;
    codes unused for ``dead_after`` steps are restarted from random current encodings.
    CHOICE: ``ema_decay`` 0.99 (the paper's "0.9" may be this momentum or an HRQ beta).
``vq``: one codebook of ``codebook_size`` codes after the last encoder block.
``hrq`` (Hierarchical Residual Quantization): one codebook per level, sizes ``levels``
    (coarse -> fine; CHOICE: 16, 32, 64, the per-level sizes of the paper's Fig. 3 are
    lost), attached to the last ``len(levels)`` encoder blocks. CHOICE for the lost Eq. 6
    ("doubled inputs residual"): level l quantizes h_l = P_l(block output) + (h_{l-1} -
    q_{l-1}) with h_0 - q_0 = 0, no rescaling. Then h_l - q_l = sum_{j<=l} P_j(.) -
    sum_{j<=l} q_j: the residual error per level reported in ``codebook_stats.tsv`` is
    ``mean ||z_l - sum_{j<=l} q_j||^2`` with z_l = sum_{j<=l} P_j(block_j output). The
    token's vector and the decoder input are the mean of the levels' quantized vectors.
    The paper's decoder reads only 2 of its 6 levels; with 3 levels all are used here.
Loss: per-position 5-way cross-entropy + ``beta`` * sum over levels of the commitment
    ``mean ||h_l - sg(q_l)||^2``. AdamW (``learning_rate``, ``weight_decay``), 50-step
    linear warm-up then cosine decay to 10%.
Token ids (``LearnedTokenizer``)
    specials 0-4 as every dnatok tokenizer, then ``vq``: id = 5 + code index (token
    strings "v0", "v1", ...). ``hrq``: the model-facing id is the *joint code* (the tuple
    of level codes): after training, the distinct tuples over the training windows (the
    whole training region tiled by ``window``, at most 1 Mbp of them, evenly spaced) are ranked
    most frequent first (ties: tuple order), the first ``max_joint_codes`` kept; id = 5 +
    rank ("h0", "h1", ...). A tuple outside that vocabulary maps to the kept tuple whose
    mean-of-levels vector is nearest (squared L2, ties: lowest rank). The per-level codes
    are ``encode_levels``. Every token spans exactly one base (token strings are names,
    not bases: their length is not a bp count).
Embeddings: spec ``embedding`` "frozen" (default): ``code_vectors()`` is the table of the
    tokens' quantized vectors, which models hold frozen under a trainable projection;
    "ids": ``code_vectors()`` is None and models learn their own embedding of the ids.
Determinism: CPU, one seed => byte-identical files (torch.manual_seed for the weights,
    batches and restarts drawn from numpy Generators keyed by (seed, step), deterministic
    algorithms, training always on one torch thread). Bytes may differ across CPU types /
    torch builds (float kernels). Files, training and resuming: ``learned_train``.
Device: training runs on the spec's ``device`` (``learned_train``). A loaded tokenizer
    (``load_tokenizer(path)``, ``LearnedTokenizer``) encodes on the CPU unless the
    environment variable ``DNATOK_TOKENIZER_DEVICE`` (auto | cpu | cuda | cuda:N; read
    when the tokenizer is loaded; "auto" = CUDA when available) says otherwise, so
    pre-training / fine-tuning jobs that call ``encode_batch`` need no change. Inputs go
    to the device per batch (``CUDA_BATCH_BP`` padded bp per pass there) and ids come
    back as numpy. CPU results are as above; on CUDA determinism is not promised, and
    codes may differ from the CPU's at near-ties (other kernels; TF32 is switched off
    while encoding, then restored).
Speed (CPU, defaults): ~0.3 s per training step (batch 64 x 128 bp, one thread);
    encoding ~0.1-0.14 Mbp/s on one thread of a busy 2-core box (1.1-2.2x the earlier
    code; 2-3x with 2 threads)
    (the network costs ~0.2 MFLOP per base; see
    bench/tokenizers/RESULTS.md). Encoding is batched, under ``torch.inference_mode``,
    in pieces of ``LearnedTokenizer.chunk`` bp with a margin of ``receptive_margin`` bp
    per side, so codes equal those of one pass over the whole sequence. On CPU a forward
    pass holds ``CPU_BATCH_BP`` (16384) padded bp, so the activations (the MLP's 4 x width
    hidden layer) stay near the cache, and with n > 1 torch threads n batches run at once
    in Python threads of one torch thread each (no intra-op barriers: these small ops
    scale badly on busy cores); the same operations on the same inputs, so the same codes.
    Changes kept only because they give bit-identical codes: unpadded batches skip the
    mask, the one-hot is a table lookup, the nearest-code search doubles the K codes
    instead of the N rows. Not done because the floats differ (checked): a channels-last
    or shifted-sum depth-wise conv (8x faster conv, ~5e-7 differences), any LayerNorm
    other than ``F.layer_norm`` over the last dimension.
"""
from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dnatok.errors import UserError
from dnatok.tokenization import fastpath
from dnatok.tokenization.core import BatchEncoding, with_special_spans
from dnatok.tokenization.learned_spec import LEARNED_KINDS
from dnatok.tokenization.vocab import (CLS_ID, MASK_ID, N_SPECIAL, PAD_ID, SEP_ID, SPECIAL_TOKENS,
                                       UNK_ID, canonical_spec)

WEIGHTS_FILE = "model.safetensors"
N_CHANNELS = 5  # A C G T N
LETTERS = np.frombuffer(b"ACGTN", dtype=np.uint8)
EPS = 1e-5
PAD_CODE = N_CHANNELS  # input code of positions past a sequence's end (all-zero one-hot)
ONE_HOT = torch.eye(N_CHANNELS + 1)[:, :N_CHANNELS].contiguous()  # input code -> one-hot row
DEVICE_ENV = "DNATOK_TOKENIZER_DEVICE"
CPU_BATCH_BP = 1 << 14   # padded bp per forward pass on CPU (activations stay in cache)
CUDA_BATCH_BP = 1 << 20  # ... on CUDA


def tokenizer_device(name: str | None = None) -> torch.device:
    """Where a loaded tokenizer encodes: ``name``, else ``$DNATOK_TOKENIZER_DEVICE``, else
    cpu. "auto" = CUDA when available; "cuda"/"cuda:N" without CUDA is a ``UserError``."""
    from dnatok.tokenization.learned_spec import check_device
    from dnatok.train.common import resolve_device

    where = "device" if name is not None else f"${DEVICE_ENV}"
    name = name if name is not None else (os.environ.get(DEVICE_ENV) or "cpu")
    return resolve_device(check_device(name, where))


def net_device(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


@contextlib.contextmanager
def fp32_on_cuda(device: torch.device):
    """On CUDA, no TF32 in matmuls/convs inside the block (codes closer to the CPU's);
    the process's settings are restored after. Best effort; nothing on CPU."""
    saved = None
    if device.type == "cuda":
        try:
            saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        except Exception:  # noqa: BLE001 -- a torch whose TF32 API changed: keep its settings
            saved = None
    try:
        yield
    finally:
        if saved is not None:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _base_lut() -> np.ndarray:
    lut = np.full(256, 4, dtype=np.int16)
    for i, c in enumerate(b"ACGT"):
        lut[c] = lut[c + 32] = i  # upper and lower case
    for c in b" \t\n\r\v\f":
        lut[c] = -1
    return lut


BASE_LUT = _base_lut()


def base_codes(seqs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated input codes (A0 C1 G2 T3, anything else 4) and per-sequence lengths."""
    buf, lengths = fastpath.to_buffer(list(seqs))
    codes = BASE_LUT[buf]
    if codes.size and codes.min() < 0:
        raise UserError("sequence contains whitespace; pass one DNA sequence per string")
    return codes.astype(np.uint8), lengths


def levels_of(spec: dict) -> list[int]:
    return [spec["codebook_size"]] if spec["kind"] == "vq" else list(spec["levels"])


def receptive_margin(spec: dict) -> int:
    """Bases on each side that influence one position: encoder or decoder (same size)."""
    return 2 + 3 * spec["depth"] + 1


# ----------------------------------------------------------------------------- network


class Block(nn.Module):
    """ConvNeXt-1D block on channels-last [B, L, C]; ``mask`` [B, L, 1] zeroes positions
    past each row's end before the conv (= the zero padding of a shorter input)."""

    def __init__(self, width: int):
        super().__init__()
        self.dw = nn.Conv1d(width, width, 7, padding=3, groups=width)
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)

    def forward(self, x, mask=None):
        y = x if mask is None else x * mask
        y = self.dw(y.transpose(1, 2)).transpose(1, 2)
        return x + self.fc2(F.gelu(self.fc1(self.norm(y))))


class EmaCodebook(nn.Module):
    """K code vectors of dimension D, updated by EMA only (all buffers, no parameters)."""

    def __init__(self, size: int, dim: int):
        super().__init__()
        self.size = size
        self.register_buffer("embed", torch.zeros(size, dim))
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("embed_sum", torch.zeros(size, dim))
        self.register_buffer("last_used", torch.zeros(size, dtype=torch.int64))
        self.register_buffer("initted", torch.zeros((), dtype=torch.int64))

    def assign(self, h: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code of each row of ``h`` [N, D] (first one on ties):
        argmin of ||h||^2 - 2 h.e + ||e||^2. (2h).e and h.(2e) are the same floats (a
        power-of-two scale is exact), so doubling the K codes instead of the N rows is free."""
        e = self.embed
        d = (h * h).sum(1, keepdim=True) - h @ (2 * e).t() + (e * e).sum(1)[None, :]
        return d.argmin(1)

    @torch.no_grad()
    def kmeans_init(self, h: torch.Tensor, rng: np.random.Generator, iters: int) -> None:
        n = h.shape[0]
        pick = rng.choice(n, size=self.size, replace=n < self.size)
        centres = h[torch.from_numpy(np.sort(pick))].clone()
        for _ in range(iters):
            self.embed.copy_(centres)
            idx = self.assign(h)
            counts = torch.bincount(idx, minlength=self.size).to(h.dtype)
            sums = torch.zeros_like(centres).index_add_(0, idx, h)
            used = counts > 0
            centres[used] = sums[used] / counts[used, None]
        self.embed.copy_(centres)
        self.cluster_size.fill_(1.0)
        self.embed_sum.copy_(centres)
        self.initted.fill_(1)

    @torch.no_grad()
    def ema_update(self, h: torch.Tensor, idx: torch.Tensor, decay: float, step: int) -> None:
        counts = torch.bincount(idx, minlength=self.size).to(h.dtype)
        sums = torch.zeros_like(self.embed).index_add_(0, idx, h)
        self.cluster_size.mul_(decay).add_(counts, alpha=1 - decay)
        self.embed_sum.mul_(decay).add_(sums, alpha=1 - decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + EPS) / (n + self.size * EPS) * n
        self.embed.copy_(self.embed_sum / smoothed[:, None])
        self.last_used[counts > 0] = step

    @torch.no_grad()
    def restart_dead(self, h: torch.Tensor, step: int, dead_after: int,
                     rng: np.random.Generator) -> int:
        """Move codes unused for ``dead_after`` steps onto random rows of ``h``."""
        dead = torch.nonzero(step - self.last_used >= dead_after).flatten()
        if dead.numel() == 0:
            return 0
        rows = torch.from_numpy(rng.choice(h.shape[0], size=dead.numel(), replace=False))
        self.embed[dead] = h[rows]
        self.embed_sum[dead] = h[rows]
        self.cluster_size[dead] = 1.0
        self.last_used[dead] = step
        return int(dead.numel())


class VQDNANet(nn.Module):
    """Encoder, per-level quantizers and decoder (see the module docstring)."""

    def __init__(self, spec: dict):
        super().__init__()
        w, d = spec["width"], spec["code_dim"]
        self.levels = levels_of(spec)
        self.depth = spec["depth"]
        self.stem = nn.Conv1d(N_CHANNELS, w, 5, padding=2)
        self.stem_norm = nn.LayerNorm(w)
        self.encoder = nn.ModuleList(Block(w) for _ in range(self.depth))
        self.proj = nn.ModuleList(nn.Linear(w, d) for _ in self.levels)
        for p in self.proj[1:]:  # hrq: start as plain residual quantization (see docstring)
            nn.init.zeros_(p.weight)
            nn.init.zeros_(p.bias)
        self.quant = nn.ModuleList(EmaCodebook(k, d) for k in self.levels)
        self.dec_in = nn.Linear(d, w)
        self.decoder = nn.ModuleList(Block(w) for _ in range(self.depth))
        self.dec_norm = nn.LayerNorm(w)
        self.head = nn.Linear(w, N_CHANNELS)

    def encode(self, codes: torch.Tensor, mask=None, init=None):
        """Per level ``(h, q, idx)`` for input codes [B, L] (PAD_CODE past the end):
        h [B, L, D] the quantizer input, q the (gradient-free) code vectors, idx [B, L].
        ``init(level, h_flat)`` is called for a level whose codebook is not initialised."""
        x = ONE_HOT.to(codes.device)[codes.long()]  # = one_hot(codes, 6)[..., :5].float()
        x = self.stem(x.transpose(1, 2)).transpose(1, 2)
        x = F.gelu(self.stem_norm(x))
        first = self.depth - len(self.levels)
        out, resid = [], None
        for i, block in enumerate(self.encoder):
            x = block(x, mask)
            if i < first:
                continue
            lv = i - first
            h = self.proj[lv](x)
            if resid is not None:
                h = h + resid
            quant = self.quant[lv]
            flat = h.reshape(-1, h.shape[-1])
            if not int(quant.initted) and init is not None:
                init(lv, flat.detach())
            idx = quant.assign(flat.detach())
            q = quant.embed[idx].reshape(h.shape)
            resid = h - q
            out.append((h, q, idx.reshape(h.shape[:-1])))
        return out

    def decode(self, v: torch.Tensor, mask=None) -> torch.Tensor:
        """Per-position logits [B, L, 5] from the decoder input vectors [B, L, D]."""
        x = self.dec_in(v)
        for block in self.decoder:
            x = block(x, mask)
        return self.head(self.dec_norm(x))

    def forward(self, codes, init=None):
        levels = self.encode(codes, None, init)
        # Straight-through: the decoder sees the codes, gradients flow into h.
        v = torch.stack([h + (q - h).detach() for h, q, _ in levels]).mean(0)
        return self.decode(v), levels


# ----------------------------------------------------------------------------- chunking


def _pieces(lengths, chunk: int, margin: int):
    """(row, start, end, core_start, core_end) covering every sequence: cores tile the
    sequence in ``chunk``-bp steps, each piece adds ``margin`` bp of real context per side."""
    out = []
    for row, n in enumerate(int(x) for x in lengths):
        for c in range(0, n, chunk):
            ce = min(n, c + chunk)
            out.append((row, max(0, c - margin), min(n, ce + margin), c, ce))
    return out


def _batches(pieces, budget: int):
    """Groups of pieces whose padded size (count x longest) stays within ``budget`` bp."""
    group, longest = [], 0
    for p in sorted(pieces, key=lambda p: p[2] - p[1], reverse=True):
        size = p[2] - p[1]
        if group and max(longest, size) * (len(group) + 1) > budget:
            yield group
            group, longest = [], 0
        group.append(p)
        longest = max(longest, size)
    if group:
        yield group


def _padded(arrays, fill, device=None):
    """Stack 1-D/2-D numpy pieces into a padded tensor plus the [B, L, 1] float mask, both
    on ``device``; the mask is None when all pieces have the same length (no padding:
    multiplying by ones is the identity, so skipping it changes no value)."""
    width = max(a.shape[0] for a in arrays)
    if all(a.shape[0] == width for a in arrays):
        out, mask = np.stack(arrays), None
    else:
        shape = (len(arrays), width) + arrays[0].shape[1:]
        out = np.full(shape, fill, dtype=arrays[0].dtype)
        mask = np.zeros((len(arrays), width, 1), dtype=np.float32)
        for i, a in enumerate(arrays):
            out[i, :a.shape[0]] = a
            mask[i, :a.shape[0]] = 1
        mask = torch.from_numpy(mask).to(device)
    return torch.from_numpy(out).to(device), mask


@torch.inference_mode()
def level_codes(net: VQDNANet, margin: int, codes: np.ndarray, lengths: np.ndarray,
                chunk: int = 4096, batch_bp: int = CPU_BATCH_BP) -> np.ndarray:
    """Level codes [sum(lengths), n_levels] int64 of concatenated input codes, each
    sequence encoded whole (pieces of ``chunk`` bp with ``margin`` >= the receptive field
    give the same codes as one pass over the sequence), on the device of ``net``."""
    offsets = fastpath._offsets(lengths)
    out = np.zeros((codes.size, len(net.levels)), dtype=np.int64)
    device = net_device(net)

    def run(group):
        with torch.inference_mode():
            x, mask = _padded([codes[offsets[r] + s:offsets[r] + e] for r, s, e, _, _ in group],
                              PAD_CODE, device)
            idx = torch.stack([i for _, _, i in net.encode(x, mask)], -1).cpu().numpy()
        for b, (r, s, _, cs, ce) in enumerate(group):
            out[offsets[r] + cs:offsets[r] + ce] = idx[b, cs - s:ce - s]

    groups = list(_batches(_pieces(lengths, chunk, margin), batch_bp))
    threads = torch.get_num_threads()
    if device.type == "cpu" and threads > 1 and len(groups) > 1:
        # One batch per thread, one torch thread each (no intra-op barriers): the same
        # operations on the same inputs, so the same codes.
        from concurrent.futures import ThreadPoolExecutor

        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(threads, initializer=torch.set_num_threads,
                                    initargs=(1,)) as pool:
                list(pool.map(run, groups))
        finally:
            torch.set_num_threads(threads)
    else:
        with fp32_on_cuda(device):
            for group in groups:
                run(group)
    return out


# ----------------------------------------------------------------------------- tokenizer


class LearnedTokenizer(BatchEncoding):
    """A saved ``vq``/``hrq`` tokenizer with ``DnaTokenizer``'s interface (numpy int64)."""

    pad_id, unk_id, cls_id, sep_id, mask_id = PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID
    special_ids = frozenset(range(N_SPECIAL))
    complement_map = None
    chunk = 4096          # core bp per encoded piece
    batch_bp = CPU_BATCH_BP  # padded bp per forward pass (CUDA_BATCH_BP on CUDA)

    def __init__(self, path, meta: dict):
        from safetensors.torch import load_file

        self.path = Path(path)
        self.meta = meta
        self.spec = canonical_spec(meta["spec"])
        self.kind = self.spec["kind"]
        if self.kind not in LEARNED_KINDS:
            raise UserError(f"{self.path}: not a learned tokenizer (kind {self.kind!r})")
        tensors = load_file(str(self.path / WEIGHTS_FILE))
        self.net = VQDNANet(self.spec)
        self.net.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("joint.")})
        self.net.eval()
        self.margin = receptive_margin(self.spec)
        self._level_vectors = [q.embed.numpy().copy() for q in self.net.quant]
        self.device = tokenizer_device()
        if self.device.type != "cpu":
            self.net.to(self.device)
            self.batch_bp = CUDA_BATCH_BP
        if self.kind == "vq":
            self.joint = None
            table = self._level_vectors[0]
            prefix = "v"
        else:
            self.joint = JointVocab(tensors["joint.codes"].numpy(), self._level_vectors)
            table = self.joint.vectors
            prefix = "h"
        self.vocab_size = N_SPECIAL + table.shape[0]
        if self.vocab_size != meta.get("vocab_size", self.vocab_size):
            raise UserError(f"{self.path}: vocab_size {meta['vocab_size']} does not match "
                            f"the weights ({self.vocab_size})")
        self._table = np.zeros((self.vocab_size, self.spec["code_dim"]), dtype=np.float32)
        self._table[N_SPECIAL:] = table
        self.id_to_token = list(SPECIAL_TOKENS) + [f"{prefix}{j}" for j in range(table.shape[0])]

    def __repr__(self) -> str:
        return (f"LearnedTokenizer({self.kind}, vocab_size={self.vocab_size}, path='{self.path}', "
                f"device={self.device})")

    # -- encoding
    def _level_codes_flat(self, codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Level codes [sum(lengths), n_levels] int64 of concatenated input codes."""
        return level_codes(self.net, self.margin, codes, lengths, self.chunk, self.batch_bp)

    def encode_levels(self, seqs: list[str]) -> list[np.ndarray]:
        """Per sequence the code of every base at every level, int64 [L, n_levels]."""
        codes, lengths = base_codes(seqs)
        flat = self._level_codes_flat(codes, lengths)
        return np.split(flat, fastpath._offsets(lengths)[1:-1])

    def _ids_of_levels(self, flat_levels: np.ndarray) -> np.ndarray:
        if self.joint is None:
            return flat_levels[:, 0] + N_SPECIAL
        return self.joint.ids(flat_levels) + N_SPECIAL

    def _encode_flat(self, seqs: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Flat ids (one per base, no special tokens) of all ``seqs`` and row offsets."""
        codes, lengths = base_codes(seqs)
        ids = self._ids_of_levels(self._level_codes_flat(codes, lengths))
        return ids.astype(np.int64), fastpath._offsets(lengths)

    def spans(self, seq: str, add_special_tokens: bool = True):
        """``(ids, starts, ends)``: token i spans base [i, i+1); [CLS] at 0 and [SEP] at
        ``len(seq)`` are zero-width (as ``DnaTokenizer.spans``)."""
        ids = self.encode(seq)
        starts = np.arange(ids.size, dtype=np.int64)
        ends = starts + 1
        return with_special_spans(ids, starts, ends, len(seq)) if add_special_tokens else (ids, starts, ends)

    # -- vectors and decoding
    def code_vectors(self) -> np.ndarray | None:
        """[vocab_size, code_dim] float32: row 5+j = the quantized vector of token j (rows
        0-4 zero); None when the spec's ``embedding`` is "ids"."""
        return None if self.spec["embedding"] == "ids" else self._table.copy()

    def _level_mean(self, flat_levels: np.ndarray) -> np.ndarray:
        return np.mean([v[flat_levels[:, i]] for i, v in enumerate(self._level_vectors)], axis=0)

    def embed(self, seqs: list[str]) -> list[np.ndarray]:
        """Per sequence the quantized vector of every base (hrq: mean over levels; the
        levels' own codes, not the joint id's), float32 [L, code_dim]."""
        codes, lengths = base_codes(seqs)
        vec = self._level_mean(self._level_codes_flat(codes, lengths)).astype(np.float32)
        return np.split(vec, fastpath._offsets(lengths)[1:-1])

    @torch.inference_mode()
    def _decode_vectors(self, vec: np.ndarray) -> np.ndarray:
        """Argmax input code (0-4) of each position of one sequence's vectors [L, D]."""
        out = np.zeros(vec.shape[0], dtype=np.int64)
        with fp32_on_cuda(self.device):
            for group in _batches(_pieces([vec.shape[0]], self.chunk, self.margin), self.batch_bp):
                v, mask = _padded([vec[s:e] for _, s, e, _, _ in group], 0.0, self.device)
                pred = self.net.decode(v, mask).argmax(-1).cpu().numpy()
                for b, (_, s, _, cs, ce) in enumerate(group):
                    out[cs:ce] = pred[b, cs - s:ce - s]
        return out

    def decode(self, ids) -> str:
        """The bases the decoder reconstructs from the tokens (special tokens dropped)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise UserError(f"token id out of range [0, {self.vocab_size})")
        ids = ids[ids >= N_SPECIAL]
        if ids.size == 0:
            return ""
        return LETTERS[self._decode_vectors(self._table[ids])].tobytes().decode("ascii")

    def reconstruct(self, seqs: list[str]) -> list[str]:
        """Decoder output from each sequence's own level codes (hrq: before the joint
        vocabulary's mapping; ``decode(encode(s))`` goes through it)."""
        return [LETTERS[self._decode_vectors(v)].tobytes().decode("ascii")
                for v in self.embed(seqs)]

    def tokens(self, ids) -> list[str]:
        return [self.id_to_token[i] for i in np.asarray(ids).reshape(-1)]


class JointVocab:
    """hrq joint codes: kept level-code tuples (rank order) and the id of any tuple."""

    def __init__(self, codes: np.ndarray, level_vectors: list[np.ndarray]):
        self.codes = np.asarray(codes, dtype=np.int64)  # [J, n_levels]
        self.radix = np.array([v.shape[0] for v in level_vectors], dtype=np.int64)
        self.vectors = np.mean([v[self.codes[:, i]] for i, v in enumerate(level_vectors)],
                               axis=0).astype(np.float32)
        self.level_vectors = level_vectors
        keys = self.key(self.codes)
        self._order = np.argsort(keys, kind="stable")
        self._sorted = keys[self._order]

    def key(self, levels: np.ndarray) -> np.ndarray:
        """Mixed-radix integer of each tuple (lexicographic = tuple order)."""
        k = np.zeros(levels.shape[0], dtype=np.int64)
        for i, r in enumerate(self.radix):
            k = k * r + levels[:, i]
        return k

    def ids(self, levels: np.ndarray) -> np.ndarray:
        """Joint index (0-based rank) of each row of ``levels`` [N, n_levels]."""
        keys = self.key(levels)
        pos = np.minimum(np.searchsorted(self._sorted, keys), self._sorted.size - 1)
        found = self._sorted[pos] == keys
        out = np.where(found, self._order[pos], -1)
        if not found.all():
            miss_keys, inverse = np.unique(keys[~found], return_inverse=True)
            first = np.flatnonzero(~found)[np.unique(inverse, return_index=True)[1]]
            out[~found] = self.nearest(levels[first])[inverse]
        return out

    def nearest(self, levels: np.ndarray) -> np.ndarray:
        """Kept tuple whose mean vector is nearest to each tuple's mean (lowest rank on ties)."""
        vec = np.mean([v[levels[:, i]] for i, v in enumerate(self.level_vectors)], axis=0)
        out = np.empty(levels.shape[0], dtype=np.int64)
        t = self.vectors.astype(np.float64)
        for s in range(0, vec.shape[0], 4096):
            v = vec[s:s + 4096].astype(np.float64)
            d = (v * v).sum(1)[:, None] - 2 * v @ t.T + (t * t).sum(1)[None, :]
            out[s:s + 4096] = d.argmin(1)
        return out


def load_learned(path, meta: dict) -> LearnedTokenizer:
    return LearnedTokenizer(path, meta)


# ----------------------------------------------------------------------------- statistics


def _entropy_bits(counts: np.ndarray) -> float:
    counts = counts[counts > 0].astype(np.float64)
    if counts.size == 0:
        return 0.0
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def _conditional_entropy(context: np.ndarray, code: np.ndarray, n_codes: int) -> float:
    """Plug-in H(code | context) in bits = H(context, code) - H(context)."""
    pair = context.astype(np.int64) * n_codes + code
    return (_entropy_bits(np.unique(pair, return_counts=True)[1])
            - _entropy_bits(np.unique(context, return_counts=True)[1]))


def _kmer_keys(bases: np.ndarray, k: int):
    """Centred k-mer (base-4 integer) of every position and whether it is all-ACGT and
    inside the sequence (``bases``: one sequence's input codes)."""
    n, half = bases.size, k // 2
    key = np.zeros(n, dtype=np.int64)
    ok = np.ones(n, dtype=bool)
    for off in range(-half, half + 1):
        idx = np.arange(n) + off
        inside = (idx >= 0) & (idx < n)
        b = np.where(inside, bases[np.clip(idx, 0, max(n - 1, 0))], 4)
        ok &= b < 4
        key = key * 4 + np.minimum(b, 3)
    return key, ok


def intrinsic_stats(tok: LearnedTokenizer, seqs: list[str], max_k: int = 15) -> dict:
    """Flat dict of intrinsic measures of a learned tokenizer on ``seqs``.

    ``usage`` / ``perplexity``: share of the model-facing codes (vq: codebook; hrq: joint
    vocabulary) that occur, and exp(entropy) of their histogram; hrq adds ``usage_l{i}``
    and ``perplexity_l{i}`` per level and ``joint_exact_frac`` (positions whose tuple is in
    the joint vocabulary). ``recon_acc``: decoder argmax from the level codes vs the input
    at ACGT positions (``recon_acc_ids``: from the token ids, i.e. after the joint mapping).
    ``entropy_bits`` H(code), ``cond_entropy_base_bits`` H(code | centre base) and
    ``context_bp``: the smallest odd k <= ``max_k`` with H(code | centred k-mer) <=
    0.1 H(code) (NaN if none). These are plug-in estimates over positions whose k-mer is
    all ACGT and inside the sequence: with many contexts and few positions each, the
    plug-in conditional entropy is biased *low* (every rare k-mer looks deterministic),
    so ``context_bp`` is a lower bound that shrinks as ``seqs`` gets smaller; compare
    tokenizers on the same sequences only.
    """
    seqs = list(seqs)
    codes, lengths = base_codes(seqs)
    levels = tok._level_codes_flat(codes, lengths)
    ids = tok._ids_of_levels(levels) - N_SPECIAL
    n_tokens = tok.vocab_size - N_SPECIAL
    out: dict = {"positions": int(codes.size)}
    hist = np.bincount(ids, minlength=n_tokens)
    out["usage"] = float((hist > 0).mean())
    out["perplexity"] = float(2 ** _entropy_bits(hist))
    if tok.joint is not None:
        for i, k in enumerate(tok.net.levels):
            h = np.bincount(levels[:, i], minlength=k)
            out[f"usage_l{i}"] = float((h > 0).mean())
            out[f"perplexity_l{i}"] = float(2 ** _entropy_bits(h))
        keys = tok.joint.key(levels)
        out["joint_exact_frac"] = float(np.isin(keys, tok.joint._sorted).mean()) if keys.size else 0.0
    acgt = codes < 4
    recon = np.concatenate([np.frombuffer(r.encode(), np.uint8) for r in tok.reconstruct(seqs)]) \
        if codes.size else np.zeros(0, np.uint8)
    from_ids = np.concatenate([np.frombuffer(tok.decode(i + N_SPECIAL).encode(), np.uint8)
                               for i in np.split(ids, fastpath._offsets(lengths)[1:-1]) if i.size]) \
        if codes.size else np.zeros(0, np.uint8)
    out["recon_acc"] = float((recon[acgt] == LETTERS[codes[acgt]]).mean()) if acgt.any() else math.nan
    out["recon_acc_ids"] = float((from_ids[acgt] == LETTERS[codes[acgt]]).mean()) if acgt.any() else math.nan
    out.update(_context_stats(codes, lengths, ids, n_tokens, max_k))
    return out


def _context_stats(codes, lengths, ids, n_tokens, max_k) -> dict:
    offsets = fastpath._offsets(lengths)
    per_k = {}
    for k in range(1, max_k + 1, 2):
        keys, oks = zip(*(_kmer_keys(codes[offsets[i]:offsets[i + 1]], k)
                          for i in range(lengths.size))) if lengths.size else ((), ())
        key = np.concatenate(keys) if keys else np.zeros(0, np.int64)
        ok = np.concatenate(oks) if oks else np.zeros(0, bool)
        per_k[k] = (_conditional_entropy(key[ok], ids[ok], n_tokens), ok)
    base_ok = per_k[1][1]
    h_code = _entropy_bits(np.bincount(ids[base_ok], minlength=n_tokens))
    out = {"entropy_bits": h_code, "cond_entropy_base_bits": per_k[1][0], "context_bp": math.nan}
    for k, (h, _) in per_k.items():
        out[f"cond_entropy_k{k}_bits"] = h
    for k, (h, _) in per_k.items():
        if h <= 0.1 * h_code:
            out["context_bp"] = k
            break
    return out

