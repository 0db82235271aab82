"""The pure-PyTorch selective scan and causal conv against naive references, and the
CUDA-kernel dispatch (with the kernel packages mocked absent / present)."""
from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from dnatok.models import scan


def scan_inputs(batch=2, length=37, d=5, n=3, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype).requires_grad_()

    A = (-torch.rand(d, n, generator=g, dtype=dtype) * 3).requires_grad_()
    return dict(u=r(batch, length, d), delta=r(batch, length, d), A=A, B=r(batch, length, n),
                C=r(batch, length, n), D=r(d), z=r(batch, length, d), delta_bias=r(d))


@pytest.mark.parametrize("chunk_elements", [2 * 5 * 3 * 8, 2**20])  # 5 chunks / 1 chunk
@pytest.mark.parametrize("with_extras", [True, False])
def test_pure_scan_matches_reference(monkeypatch, chunk_elements, with_extras):
    monkeypatch.setattr(scan, "_CHUNK_ELEMENTS", chunk_elements)
    monkeypatch.setenv(scan.FORCE_PURE_ENV, "1")
    x = scan_inputs()
    if not with_extras:
        x = {k: v for k, v in x.items() if k not in ("D", "z", "delta_bias")}
        x["delta"] = x["delta"].detach().abs().requires_grad_()  # a positive step size
    kw = dict(delta_softplus=with_extras)
    y = scan.selective_scan(**x, **kw)
    y_ref = scan.selective_scan_reference(**x, **kw)
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    gy = torch.randn_like(y)
    names = list(x)
    grads = torch.autograd.grad(y, [x[k] for k in names], gy)
    grads_ref = torch.autograd.grad(y_ref, [x[k] for k in names], gy)
    for name, g, g_ref in zip(names, grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-11, atol=1e-11, msg=lambda m: f"d{name}: {m}")


def test_pure_scan_float32_and_bfloat16_inputs():
    x = {k: v.detach().float() for k, v in scan_inputs().items()}
    y_ref = scan.selective_scan_reference(**{k: v.double() for k, v in x.items()}, delta_softplus=True)
    y32 = scan.selective_scan(**x, delta_softplus=True)
    torch.testing.assert_close(y32.double(), y_ref, rtol=1e-5, atol=1e-5)
    # bf16 inputs are scanned in float32 and returned as bf16
    y16 = scan.selective_scan(**{k: v.bfloat16() for k, v in x.items()}, delta_softplus=True)
    assert y16.dtype == torch.bfloat16


def test_scan_state_carries_across_chunks(monkeypatch):
    """A long decay (A ~ 0): the output at the end depends on an input many chunks earlier."""
    monkeypatch.setattr(scan, "_CHUNK_ELEMENTS", 8)  # 8 steps per chunk at this size
    L = 40
    u = torch.zeros(1, L, 1, dtype=torch.float64)
    u[0, 0, 0] = 1.0
    ones = torch.ones(1, L, 1, dtype=torch.float64)
    y = scan.selective_scan(u, ones, torch.full((1, 1), -1e-3, dtype=torch.float64),
                            ones, ones)
    expected = torch.exp(torch.tensor(-1e-3, dtype=torch.float64) * torch.arange(L))
    torch.testing.assert_close(y[0, :, 0], expected.double())


def test_causal_conv1d_matches_grouped_conv():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 11, 6, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
    out = scan.causal_conv1d(x, w, b, activation="silu")
    ref = F.silu(F.conv1d(x.transpose(1, 2), w[:, None, :], b, padding=3, groups=6)[..., :11]).transpose(1, 2)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    gx, gw, gb = torch.autograd.grad(out.sum(), [x, w, b])
    rx, rw, rb = torch.autograd.grad(ref.sum(), [x, w, b])
    for a, r in ((gx, rx), (gw, rw), (gb, rb)):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-12)
    # causal: the output at t ignores inputs after t
    x2 = x.detach().clone()
    x2[:, 7:] += 1.0
    torch.testing.assert_close(scan.causal_conv1d(x2, w, b)[:, :7], scan.causal_conv1d(x.detach(), w, b)[:, :7])


# ---------------------------------------------------------------- dispatch

@pytest.fixture
def fresh_probe():
    scan.kernels.cache_clear()
    yield
    scan.kernels.cache_clear()


def test_dispatch_without_kernel_packages(monkeypatch, fresh_probe):
    # a None entry in sys.modules makes `import` raise ImportError
    monkeypatch.setitem(sys.modules, "mamba_ssm", None)
    monkeypatch.setitem(sys.modules, "mamba_ssm.ops", None)
    monkeypatch.setitem(sys.modules, "mamba_ssm.ops.selective_scan_interface", None)
    monkeypatch.setitem(sys.modules, "causal_conv1d", None)
    monkeypatch.delenv(scan.FORCE_PURE_ENV, raising=False)
    assert scan.kernels() == scan.Kernels(None, None)
    assert scan.scan_backend("cuda") == "pure"
    assert scan.conv_backend("cuda") == "pure"
    assert scan.scan_backend("cpu") == "pure"


def _fake_kernel_modules(monkeypatch, calls):
    """Install stand-ins for mamba_ssm / causal_conv1d that follow their documented
    channel-first layout ((batch, dim, length)) and compute with our references."""
    import types

    def selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
        calls.append("scan")
        t = lambda x: None if x is None else x.transpose(1, 2)
        return scan.selective_scan_reference(t(u), t(delta), A, t(B), t(C), D, t(z), delta_bias,
                                             delta_softplus).transpose(1, 2)

    def causal_conv1d_fn(x, weight, bias=None, activation=None):
        calls.append("conv")
        out = F.conv1d(x, weight[:, None, :], bias, padding=weight.shape[1] - 1, groups=x.shape[1])
        out = out[..., :x.shape[-1]]
        return F.silu(out) if activation == "silu" else out

    m_iface = types.ModuleType("mamba_ssm.ops.selective_scan_interface")
    m_iface.selective_scan_fn = selective_scan_fn
    m_conv = types.ModuleType("causal_conv1d")
    m_conv.causal_conv1d_fn = causal_conv1d_fn
    monkeypatch.setitem(sys.modules, "mamba_ssm", types.ModuleType("mamba_ssm"))
    monkeypatch.setitem(sys.modules, "mamba_ssm.ops", types.ModuleType("mamba_ssm.ops"))
    monkeypatch.setitem(sys.modules, "mamba_ssm.ops.selective_scan_interface", m_iface)
    monkeypatch.setitem(sys.modules, "causal_conv1d", m_conv)


def test_dispatch_with_kernel_packages(monkeypatch, fresh_probe):
    calls = []
    _fake_kernel_modules(monkeypatch, calls)
    monkeypatch.delenv(scan.FORCE_PURE_ENV, raising=False)
    k = scan.kernels()
    assert k.selective_scan_fn is not None and k.causal_conv1d_fn is not None
    assert scan.scan_backend("cuda") == "cuda-kernel" and scan.conv_backend("cuda:0") == "cuda-kernel"
    assert scan.scan_backend("cpu") == "pure"  # kernels are CUDA-only
    monkeypatch.setenv(scan.FORCE_PURE_ENV, "1")
    assert scan.scan_backend("cuda") == "pure" and scan.conv_backend("cuda") == "pure"
    # the probe is cached: removing the packages does not change the answer until cache_clear
    monkeypatch.setitem(sys.modules, "causal_conv1d", None)
    assert scan.kernels().causal_conv1d_fn is not None
    scan.kernels.cache_clear()
    assert scan.kernels().causal_conv1d_fn is None


def test_kernel_branch_converts_layouts(monkeypatch, fresh_probe):
    """Run the kernel branch on CPU with the stand-in kernels: the channel-last <-> channel-
    first conversions must give the same result as the pure path."""
    calls = []
    _fake_kernel_modules(monkeypatch, calls)
    monkeypatch.setattr(scan, "scan_backend", lambda device: "cuda-kernel")
    monkeypatch.setattr(scan, "conv_backend", lambda device: "cuda-kernel")
    # float32: the kernels take A, D and delta_bias in float32
    x = {k: v.detach() for k, v in scan_inputs(dtype=torch.float32).items()}
    y_kernel = scan.selective_scan(**x, delta_softplus=True)
    w, b = torch.randn(5, 4), torch.randn(5)
    c_kernel = scan.causal_conv1d(x["u"], w, b, activation="silu")
    assert calls == ["scan", "conv"]
    monkeypatch.undo()
    torch.testing.assert_close(y_kernel, scan.selective_scan(**x, delta_softplus=True))
    torch.testing.assert_close(c_kernel, scan.causal_conv1d(x["u"], w, b, activation="silu"))


# ---------------------------------------------------------------- GPU agreement

def _kernels_on_gpu():
    if not torch.cuda.is_available():
        return False
    scan.kernels.cache_clear()
    k = scan.kernels()
    return k.selective_scan_fn is not None and k.causal_conv1d_fn is not None


@pytest.mark.skipif(not _kernels_on_gpu(), reason="needs CUDA with mamba_ssm and causal_conv1d installed")
def test_gpu_kernels_agree_with_pure_path(monkeypatch):
    """fp32: kernel vs pure path, outputs and gradients, relative error < 1e-3."""
    from dnatok.models import build_pretraining_model

    torch.manual_seed(0)
    x = {k: v.detach().float().cuda().requires_grad_() for k, v in
         scan_inputs(batch=4, length=300, d=64, n=16, dtype=torch.float32).items()}

    def run(force_pure):
        if force_pure:
            monkeypatch.setenv(scan.FORCE_PURE_ENV, "1")
        else:
            monkeypatch.delenv(scan.FORCE_PURE_ENV, raising=False)
        y = scan.selective_scan(**x, delta_softplus=True)
        grads = torch.autograd.grad(y.square().sum(), list(x.values()))
        return [y.detach(), *grads]

    assert scan.scan_backend("cuda") == "cuda-kernel"
    kernel, pure = run(False), run(True)
    for a, b in zip(kernel, pure):
        assert ((a - b).norm() / b.norm()).item() < 1e-3

    model = build_pretraining_model("caduceus", 8, 0, d_model=64, n_layer=2).cuda()
    ids = torch.randint(3, 7, (2, 200), device="cuda")
    logits = []
    for force in (False, True):
        if force:
            monkeypatch.setenv(scan.FORCE_PURE_ENV, "1")
        with torch.no_grad():
            logits.append(model(ids).logits)
    assert ((logits[0] - logits[1]).norm() / logits[1].norm()).item() < 1e-3
