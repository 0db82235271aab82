"""Selective scan (the S6 recurrence of Mamba) and the short causal depthwise convolution.

Two implementations share one calling convention (channel-last tensors, as produced by
``nn.Linear``):

* a pure-PyTorch path (any device, any float dtype), written for CPU speed: the
  recurrence runs as one fused in-place ``addcmul_`` per time step over a whole chunk
  of precomputed decay/input terms, and the backward pass is hand-written (a reverse
  recurrence of the same shape) so autograd does not have to record thousands of tiny
  nodes. The forward keeps only the state at each chunk boundary; the backward
  recomputes a chunk's states from it, so memory stays O(B*D*N*chunk) per layer.
* the CUDA kernels of the ``mamba_ssm`` and ``causal_conv1d`` packages, used when they
  import and the tensors are on a CUDA device.

``DNATOK_FORCE_PURE_SCAN=1`` forces the pure path everywhere (useful to compare the two
on a GPU). The import probe is cached; :func:`kernels` re-probes after
``kernels.cache_clear()``.

Shapes (channel-last): u, delta, z: (batch, length, d_inner); A: (d_inner, d_state);
B, C: (batch, length, d_state); D, delta_bias: (d_inner,).
"""
from __future__ import annotations

import contextlib
import functools
import os
from typing import NamedTuple

import torch
import torch.nn.functional as F

FORCE_PURE_ENV = "DNATOK_FORCE_PURE_SCAN"

# State elements (time steps * batch * d_inner * d_state) per chunk. The chunk's work
# buffers (decay terms, states, gradients: 4 MiB each in float32) are reused from chunk to
# chunk and stay in cache between the dozen passes made over them. Measured for one
# layer's scan (fwd+bwd, batch 8 x 1024, d_inner 256, d_state 16, 2-core EPYC): 8 to 128
# steps per chunk all took 0.13-0.19 s, 16-32 steps the least.
_CHUNK_ELEMENTS = 2**20


class Kernels(NamedTuple):
    selective_scan_fn: object | None
    causal_conv1d_fn: object | None


@functools.lru_cache(maxsize=1)
def kernels() -> Kernels:
    """Probe (once) for the optional CUDA kernel packages; None for each that is absent."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # ImportError, or a broken CUDA build raising at import
        selective_scan_fn = None
    try:
        from causal_conv1d import causal_conv1d_fn
    except Exception:
        causal_conv1d_fn = None
    return Kernels(selective_scan_fn, causal_conv1d_fn)


def _force_pure() -> bool:
    return os.environ.get(FORCE_PURE_ENV, "").strip() not in ("", "0", "false", "False")


def scan_backend(device: torch.device | str) -> str:
    """Which selective-scan implementation runs for tensors on ``device``: "cuda-kernel" or "pure"."""
    device = torch.device(device)
    if device.type == "cuda" and not _force_pure() and kernels().selective_scan_fn is not None:
        return "cuda-kernel"
    return "pure"


def conv_backend(device: torch.device | str) -> str:
    """Which causal-conv1d implementation runs for tensors on ``device``: "cuda-kernel" or "pure"."""
    device = torch.device(device)
    if device.type == "cuda" and not _force_pure() and kernels().causal_conv1d_fn is not None:
        return "cuda-kernel"
    return "pure"


# --------------------------------------------------------------------------- conv1d

def causal_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  activation: str | None = None) -> torch.Tensor:
    """Depthwise causal convolution along the length axis.

    x: (batch, length, channels); weight: (channels, kernel); bias: (channels,).
    out[b, t, c] = bias[c] + sum_k weight[c, k] * x[b, t - (kernel - 1) + k, c]  (x = 0 before t = 0).
    activation: None or "silu".
    """
    if activation not in (None, "silu"):
        raise ValueError(f"unsupported activation {activation!r}")
    if conv_backend(x.device) == "cuda-kernel":
        fn = kernels().causal_conv1d_fn
        # the kernel wants one dtype for input and weights (autocast leaves weights fp32)
        out = fn(x.transpose(1, 2).contiguous(), weight.to(x.dtype).contiguous(),
                 None if bias is None else bias.to(x.dtype), activation=activation)
        return out.transpose(1, 2)
    kernel = weight.shape[1]
    length = x.shape[1]
    xp = F.pad(x, (0, 0, kernel - 1, 0))  # zeros before the first position
    # A handful of shifted multiply-adds is faster on CPU than a grouped conv1d in
    # channel-last layout and needs no transposes.
    out = xp[:, kernel - 1:kernel - 1 + length] * weight[:, kernel - 1]
    for k in range(kernel - 1):
        out = out + xp[:, k:k + length] * weight[:, k]
    if bias is not None:
        out = out + bias
    if activation == "silu":
        out = F.silu(out)
    return out


# --------------------------------------------------------------------------- scan

@contextlib.contextmanager
def _single_threaded():
    """Run the per-time-step loop on one thread. Each step is a small op (batch * d_inner *
    d_state elements) that PyTorch would otherwise split across its thread pool: one
    fork/join per step costs more than it saves, and on a machine shared with other
    processes a descheduled worker thread stalls every step."""
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _chunk_len(batch: int, d_inner: int, d_state: int, length: int) -> int:
    per_step = max(1, batch * d_inner * d_state)
    return int(max(1, min(length, max(8, _CHUNK_ELEMENTS // per_step))))


def _chunk_states(dt, A, Bm, u, t0, t1, h0, dA_buf, hs_buf):
    """States for time steps [t0, t1) given the state h0 before t0 (time-major inputs).

    Writes into (views of) the preallocated buffers and returns them:
    dA[t] = exp(dt[t] A) and hs[t] = dA[t] * hs[t-1] + dt[t] u[t] B[t], both
    (T, batch, d_inner, d_state). Reusing buffers avoids allocating (and page-faulting)
    large tensors for every chunk.
    """
    n = t1 - t0
    dA, hs = dA_buf[:n], hs_buf[:n]
    torch.mul(dt[t0:t1, :, :, None], A, out=dA)
    dA.exp_()
    # the input terms dt*u*B go straight into the state buffer, then the recurrence runs
    # in place: one fused multiply-add per time step over (batch, d_inner, d_state)
    torch.mul((dt[t0:t1] * u[t0:t1])[:, :, :, None], Bm[t0:t1, :, None, :], out=hs)
    with _single_threaded():
        hs[0].addcmul_(dA[0], h0)
        for t in range(1, n):
            hs[t].addcmul_(dA[t], hs[t - 1])
    return dA, hs


class _ScanCore(torch.autograd.Function):
    """y[t] = C[t] . h[t],  h[t] = exp(dt[t] A) h[t-1] + dt[t] B[t] u[t],  h[-1] = 0.

    Inputs are time-major and contiguous: dt, u (L, B, D); Bm, C (L, B, N); A (D, N).
    Output (L, B, D). Only the state at each chunk start is kept for the backward pass.
    """

    @staticmethod
    def forward(ctx, dt, A, Bm, C, u):
        L, batch, D = u.shape
        N = A.shape[1]
        T = _chunk_len(batch, D, N, L)
        n_chunks = (L + T - 1) // T
        dA_buf = u.new_empty(T, batch, D, N)
        hs_buf = u.new_empty(T, batch, D, N)
        y = u.new_empty(L, batch, D)
        starts = u.new_zeros(n_chunks, batch, D, N)
        for i in range(n_chunks):
            t0, t1 = i * T, min(L, (i + 1) * T)
            _, hs = _chunk_states(dt, A, Bm, u, t0, t1, starts[i], dA_buf, hs_buf)
            # contract the states with C: (T,B,D,N) @ (T,B,N,1) -> (T,B,D)
            y[t0:t1] = torch.matmul(hs, C[t0:t1, :, :, None]).squeeze(-1)
            if i + 1 < n_chunks:
                starts[i + 1].copy_(hs[-1])
        ctx.chunk = T
        ctx.save_for_backward(dt, A, Bm, C, u, starts)
        return y

    @staticmethod
    def backward(ctx, gy):
        dt, A, Bm, C, u, starts = ctx.saved_tensors
        T = ctx.chunk
        L, batch, D = u.shape
        N = A.shape[1]
        gy = gy.contiguous()
        dA_buf = u.new_empty(T, batch, D, N)
        hs_buf = u.new_empty(T, batch, D, N)
        g_buf = u.new_empty(T, batch, D, N)
        g_dt, g_u = torch.empty_like(dt), torch.empty_like(u)
        g_B, g_C = torch.empty_like(Bm), torch.empty_like(C)
        g_A = torch.zeros_like(A)
        carry = None  # dL/dh[t1-1] from the chunk after: dA[t1] * dL/dh[t1]
        for i in range(starts.shape[0] - 1, -1, -1):
            t0, t1 = i * T, min(L, (i + 1) * T)
            h0 = starts[i]
            dA, hs = _chunk_states(dt, A, Bm, u, t0, t1, h0, dA_buf, hs_buf)
            gy_c = gy[t0:t1]
            # y[t] = C[t] . h[t]  ->  dL/dC[t] = sum_d gy[t, d] h[t, d, :]
            g_C[t0:t1] = torch.matmul(gy_c[:, :, None, :], hs).squeeze(2)
            # dL/dh[t] = gy[t] C[t] + dA[t+1] dL/dh[t+1]: direct term, then reverse recurrence
            g = g_buf[:t1 - t0]
            torch.mul(gy_c[:, :, :, None], C[t0:t1, :, None, :], out=g)
            if carry is not None:
                g[-1] += carry
            with _single_threaded():
                for t in range(t1 - t0 - 2, -1, -1):
                    g[t].addcmul_(dA[t + 1], g[t + 1])
            carry = dA[0] * g[0]
            # input term dt[t] u[t] B[t] (its gradient is dL/dh[t])
            dtu = dt[t0:t1] * u[t0:t1]
            g_dtu = torch.matmul(g, Bm[t0:t1, :, :, None]).squeeze(-1)   # sum_n g B
            g_B[t0:t1] = torch.matmul(dtu[:, :, None, :], g).squeeze(2)  # sum_d g dt u
            # decay term exp(dt[t] A) multiplies h[t-1]: dL/d(dt A) = dL/dh[t] * h[t-1] * dA[t]
            g.mul_(dA)
            g[1:].mul_(hs[:-1])
            g[0].mul_(h0)
            g_dt_a = torch.mul(g, A, out=dA).sum(-1)                     # sum_n (.) A
            g_A += torch.mul(g, dt[t0:t1, :, :, None], out=hs).sum((0, 1))  # sum_{t,b} (.) dt
            g_dt[t0:t1] = g_dt_a + g_dtu * u[t0:t1]
            g_u[t0:t1] = g_dtu * dt[t0:t1]
        return g_dt, g_A, g_B, g_C, g_u


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Selective scan, channel-last. Returns y (batch, length, d_inner) in u's dtype.

    delta' = softplus(delta + delta_bias) (softplus only if delta_softplus);
    h[t] = exp(delta'[t] A) h[t-1] + delta'[t] B[t] u[t];  y[t] = C[t] . h[t] + D u[t];
    y *= silu(z) when z is given.
    """
    if scan_backend(u.device) == "cuda-kernel":
        fn = kernels().selective_scan_fn
        # kernel layout is channel-first; u, delta, B, C, z share the input dtype while
        # A, D and delta_bias are float32
        cf = lambda t: t.to(u.dtype).transpose(1, 2).contiguous()  # noqa: E731
        out = fn(cf(u), cf(delta), A.float().contiguous(), cf(B), cf(C),
                 D=None if D is None else D.float(),
                 z=None if z is None else cf(z),
                 delta_bias=None if delta_bias is None else delta_bias.float(),
                 delta_softplus=delta_softplus)
        return out.transpose(1, 2)
    dtype = u.dtype
    # The recurrence accumulates over the whole sequence: run it in float32 at least,
    # even under bf16/fp16 autocast (float64 stays float64 for the exactness tests).
    work = torch.float64 if dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=u.device.type, enabled=False):
        uw = u.to(work)
        dt = delta.to(work)
        if delta_bias is not None:
            dt = dt + delta_bias.to(work)
        if delta_softplus:
            dt = F.softplus(dt)
        y = _ScanCore.apply(dt.transpose(0, 1).contiguous(), A.to(work),
                            B.to(work).transpose(0, 1).contiguous(),
                            C.to(work).transpose(0, 1).contiguous(),
                            uw.transpose(0, 1).contiguous()).transpose(0, 1)
        if D is not None:
            y = y + uw * D.to(work)
        if z is not None:
            y = y * F.silu(z.to(work))
    return y.to(dtype)


def selective_scan_reference(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Naive step-by-step version of :func:`selective_scan` (plain autograd), for tests only."""
    dt = delta if delta_bias is None else delta + delta_bias
    if delta_softplus:
        dt = F.softplus(dt)
    batch, length, d_inner = u.shape
    h = u.new_zeros(batch, d_inner, A.shape[1])
    ys = []
    for t in range(length):
        decay = torch.exp(dt[:, t, :, None] * A)
        h = decay * h + dt[:, t, :, None] * B[:, t, None, :] * u[:, t, :, None]
        ys.append((h * C[:, t, None, :]).sum(-1))
    y = torch.stack(ys, dim=1)
    if D is not None:
        y = y + u * D
    if z is not None:
        y = y * F.silu(z)
    return y
