"""Caduceus releases (``kuleshov-group/caduceus-ph_*`` and ``caduceus-ps_*``) in pure
PyTorch, with the released parameter names; no remote code, no mamba_ssm needed (its CUDA
scan/conv kernels are used when installed, through :mod:`dnatok.models.scan`).

Block (mamba_ssm prenorm ``Block``): ``residual = hidden + residual`` (``hidden`` at the
first layer; kept in fp32 with ``residual_in_fp32``), ``hidden = mixer(RMSNorm(residual))``;
the output is ``norm_f(hidden + residual)``. RMSNorm is computed in fp32.
Mixer: BiMamba, ``mamba_fwd(h) (+ or *) flip(mamba_rev(flip(h)))``, each a Mamba-v1 mixer;
with ``bidirectional_weight_tie`` the reverse one uses ``mamba_fwd``'s in/out projections
(stored once). Flips are per row within its real length (right padding), so padded rows
give what the release gives on the unpadded row (the release itself ignores the mask).

PS (``rcps``): the hidden state has 2*d_model channels ``[a | b]``; RC = reverse the
positions and the channel order. Embedding ``[E[x] | flip_C(E[comp(x)])]``; mixer
``[f(a) | rc(f(rc(b)))]``; norm ``[n(a) | rc(n(rc(b)))]``. In the fused add+norm ordering
(``fused_add_norm``, what the releases were trained with) every block's norm takes the
second half first: the (normed, residual) pair comes out as ``[n(b) | rc(n(rc(a)))]``,
``[b | a]``, i.e. the halves are swapped at every block (the residual swapping along with
the normed output is our reading of §6, to be checked against upstream on a GPU, §10.3);
the final ``norm_f`` does not swap.
``fused_ordering=False`` selects the non-fused wrapper's ordering (no swap), which equals
running one backbone on x and on RC(x) (as :mod:`dnatok.models.caduceus` does).
Both orderings are RC-equivariant; they differ numerically on the same weights.

Classifier (released ``CaduceusForSequenceClassification``): pool, then a bias-free
``score``; PS pools ``a`` and ``rc(b)`` and averages the two (equal to scoring each and
averaging the logits).

State-dict layout: PH as read from the released safetensors header (checkpoints.md §6);
PS (``word_embeddings.embedding.weight``, ``.submodule.`` wrapper names, ``complement_map``
buffers) from a converter's description, unverified against a real header.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PreTrainedModel

from dnatok.errors import UserError
from dnatok.models.caduceus import validate_complement_map
from dnatok.models.heads import (POOLINGS, ClassifierMixin, DnaConfig, RMSNorm, check_right_padded,
                                 init_fill, init_normal, init_uniform, pool, reverse_index,
                                 reverse_seq)
from dnatok.models.scan import causal_conv1d, selective_scan

__all__ = ["NAME", "LABEL", "TOKENIZER", "matches", "Config", "config_from_release", "Classifier",
           "map_key", "DROPPED", "NEW_HEAD", "write_tiny_release"]

NAME = "caduceus_hub"
LABEL = "Caduceus"
TOKENIZER = "char"

PREFIX = "caduceus."
# lm_head.*: the MLM head (tied to the embedding; PS also has a complement_map buffer and
# possibly an aliased lm_head.lm_head.weight). The embedding's complement_map buffer (PS)
# duplicates config.complement_map.
DROPPED = ("lm_head.", "caduceus.backbone.embeddings.word_embeddings.complement_map")
NEW_HEAD = ("score.",)

STRATEGIES = ("add", "ew_multiply")
SSM_DEFAULTS = {"d_state": 16, "d_conv": 4, "expand": 2, "dt_rank": "auto", "dt_min": 0.001,
                "dt_max": 0.1, "conv_bias": True, "bias": False}
# char tokenizer: [CLS]0 [SEP]1 [BOS]2 [MASK]3 [PAD]4 [RESERVED]5 [UNK]6 A7 C8 G9 T10 N11
RELEASE_COMPLEMENT = {7: 10, 10: 7, 8: 9, 9: 8}


def matches(release_config: dict) -> bool:
    return release_config.get("model_type") == "caduceus"


def _need(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise UserError(f"Caduceus config {key}: {problem}")


def _complement_list(cm, size: int) -> list[int]:
    """complement_map (a dict with str or int keys, or a list) as a list over the padded
    vocabulary (ids it does not list map to themselves)."""
    if isinstance(cm, dict):
        cm = {int(k): int(v) for k, v in cm.items()}
        cm = [cm.get(i, i) for i in range(max(size, max(cm, default=-1) + 1))]
    cm = list(cm) + list(range(len(cm), size))
    try:
        return validate_complement_map(cm, size)
    except ValueError as e:
        raise UserError(f"Caduceus config complement_map: {e}") from None


class Config(DnaConfig):
    """The release's config fields plus the classifier fields. ``fused_ordering`` (default:
    the release's ``fused_add_norm``) picks the PS half ordering (module docstring);
    ``pooling`` defaults to the released SeqCls's mean over all positions."""

    model_type = "dnatok_caduceus_hub"

    def __init__(self, d_model: int = 256, n_layer: int = 16, vocab_size: int = 12,
                 pad_vocab_size_multiple: int = 8, rms_norm: bool = True, fused_add_norm: bool = True,
                 residual_in_fp32: bool = False, norm_epsilon: float = 1e-5, bidirectional: bool = True,
                 bidirectional_strategy: str = "add", bidirectional_weight_tie: bool = True,
                 rcps: bool = False, complement_map=None, ssm_cfg: dict | None = None,
                 initializer_cfg: dict | None = None, fused_ordering: bool | None = None,
                 pooling: str = "mean_all", pad_token_id: int = 4, **kwargs):
        _need(rms_norm is True, "rms_norm", "only RMSNorm (rms_norm true) is supported")
        _need(bidirectional_strategy in STRATEGIES, "bidirectional_strategy",
              f"must be one of {STRATEGIES}, got {bidirectional_strategy!r}")
        _need(pooling in POOLINGS, "pooling", f"must be one of {POOLINGS}, got {pooling!r}")
        ssm_cfg = dict(ssm_cfg or {})
        _need(ssm_cfg.get("layer", "Mamba1") == "Mamba1", "ssm_cfg.layer", "only Mamba1 is supported")
        self.d_model, self.n_layer = d_model, n_layer
        self.pad_vocab_size_multiple = pad_vocab_size_multiple
        self.rms_norm, self.fused_add_norm = rms_norm, fused_add_norm
        self.residual_in_fp32, self.norm_epsilon = residual_in_fp32, norm_epsilon
        self.bidirectional, self.bidirectional_strategy = bidirectional, bidirectional_strategy
        self.bidirectional_weight_tie, self.rcps = bidirectional_weight_tie, rcps
        self.ssm_cfg = ssm_cfg
        self.initializer_cfg = dict(initializer_cfg or {})
        self.fused_ordering = fused_add_norm if fused_ordering is None else fused_ordering
        mult = max(1, pad_vocab_size_multiple)
        padded = math.ceil(vocab_size / mult) * mult
        if complement_map is not None:
            complement_map = _complement_list(complement_map, padded)
        elif rcps:
            raise UserError("Caduceus config complement_map: needed with rcps true")
        kwargs.setdefault("initializer_range", self.initializer_cfg.get("initializer_range", 0.02))
        super().__init__(vocab_size=vocab_size, pad_token_id=pad_token_id, pooling=pooling,
                         complement_map=complement_map, **kwargs)

    def ssm(self, key: str):
        return self.ssm_cfg.get(key, SSM_DEFAULTS[key])

    @property
    def padded_vocab_size(self) -> int:
        mult = max(1, self.pad_vocab_size_multiple)
        return math.ceil(self.vocab_size / mult) * mult

    @property
    def d_inner(self) -> int:
        return int(self.ssm("expand") * self.d_model)

    @property
    def dt_rank(self) -> int:
        r = self.ssm("dt_rank")
        return math.ceil(self.d_model / 16) if r == "auto" else int(r)

    @property
    def hidden_size(self) -> int:
        return self.d_model

    @property
    def num_hidden_layers(self) -> int:
        return self.n_layer


RELEASE_KEYS = ("d_model", "n_layer", "vocab_size", "pad_vocab_size_multiple", "rms_norm",
                "fused_add_norm", "residual_in_fp32", "norm_epsilon", "bidirectional",
                "bidirectional_strategy", "bidirectional_weight_tie", "rcps", "complement_map",
                "ssm_cfg", "initializer_cfg", "pad_token_id")


def config_from_release(release_config: dict, **classifier_fields) -> Config:
    if not matches(release_config):
        raise UserError(f"not a Caduceus config (model_type {release_config.get('model_type')!r})")
    fields = {k: release_config[k] for k in RELEASE_KEYS if k in release_config}
    return Config(**fields, **classifier_fields)


# --------------------------------------------------------------------------- modules

class Mamba(nn.Module):
    """One Mamba-v1 mixer with the release's parameter names. ``proj=False`` leaves out
    in_proj/out_proj (the reverse direction with weight tying uses the forward ones)."""

    def __init__(self, config: Config, proj: bool = True):
        super().__init__()
        d, di, r = config.d_model, config.d_inner, config.dt_rank
        n, k = config.ssm("d_state"), config.ssm("d_conv")
        self.d_state, self.dt_rank = n, r
        if proj:
            self.in_proj = nn.Linear(d, 2 * di, bias=config.ssm("bias"))
            self.out_proj = nn.Linear(di, d, bias=config.ssm("bias"))
        self.conv1d = nn.Conv1d(di, di, k, groups=di, padding=k - 1, bias=config.ssm("conv_bias"))
        self.x_proj = nn.Linear(di, r + 2 * n, bias=False)
        self.dt_proj = nn.Linear(r, di, bias=True)
        self.dt_proj._dt_range = (config.ssm("dt_min"), config.ssm("dt_max"))  # for init
        self.A_log = nn.Parameter(torch.empty(di, n))
        self.D = nn.Parameter(torch.empty(di))

    def ssm(self, x, z):
        """(x, z) = in_proj output halves -> gated SSM output (before out_proj)."""
        x = causal_conv1d(x, self.conv1d.weight[:, 0], self.conv1d.bias, activation="silu")
        dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.linear(dt, self.dt_proj.weight)  # its bias goes in the scan, before softplus
        a_log = self.A_log if self.A_log.dtype == torch.float64 else self.A_log.float()
        A = -torch.exp(a_log)
        return selective_scan(x, dt, A, B, C, D=self.D, z=z, delta_bias=self.dt_proj.bias,
                              delta_softplus=True)


class BiMamba(nn.Module):
    """``mamba_fwd(h)`` combined with ``flip(mamba_rev(flip(h)))`` (add or ew_multiply)."""

    def __init__(self, config: Config):
        super().__init__()
        self.strategy = config.bidirectional_strategy
        self.tie = config.bidirectional_weight_tie
        self.mamba_fwd = Mamba(config)
        self.mamba_rev = Mamba(config, proj=not self.tie) if config.bidirectional else None

    def forward(self, h, rev_idx=None):
        fwd = self.mamba_fwd
        out = fwd.out_proj(fwd.ssm(*fwd.in_proj(h).chunk(2, dim=-1)))
        if self.mamba_rev is None:
            return out
        proj = fwd if self.tie else self.mamba_rev
        xz = proj.in_proj(reverse_seq(h, rev_idx)).chunk(2, dim=-1)
        out_rev = reverse_seq(proj.out_proj(self.mamba_rev.ssm(*xz)), rev_idx)
        return out + out_rev if self.strategy == "add" else out * out_rev


class Block(nn.Module):
    """Holds one layer's ``norm`` and ``mixer``; the residual logic is in :class:`Backbone`."""

    def __init__(self, config: Config):
        super().__init__()
        self.norm = RMSNorm(config.d_model, config.norm_epsilon)
        self.mixer = BiMamba(config)


def rms_norm(x, norm: RMSNorm, out_dtype):
    """x * rsqrt(mean(x^2) + eps) * weight, computed in fp32 (fp64 stays fp64)."""
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    xf = x.to(work)
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + norm.eps) * norm.weight.to(work)
    return y.to(out_dtype)


def rc(t, rev_idx):
    """Reverse complement of hidden states: positions (per row, within its real length)
    and channels."""
    return reverse_seq(t, rev_idx).flip(-1)


class Backbone(nn.Module):
    """Embedding, the prenorm blocks and norm_f; PS (rcps) works on 2*d_model channels."""

    def __init__(self, config: Config):
        super().__init__()
        self.rcps = config.rcps
        self.swap = config.rcps and config.fused_ordering
        self.residual_in_fp32 = config.residual_in_fp32
        self.complement_map = config.complement_map
        self.embeddings = nn.ModuleDict(
            {"word_embeddings": nn.Embedding(config.padded_vocab_size, config.d_model)})
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm_f = RMSNorm(config.d_model, config.norm_epsilon)

    @property
    def output_dim(self) -> int:
        d = self.norm_f.weight.shape[0]
        return 2 * d if self.rcps else d

    def embed(self, input_ids):
        emb = self.embeddings["word_embeddings"]
        h = emb(input_ids)
        if not self.rcps:
            return h
        comp = torch.tensor(self.complement_map, dtype=torch.long, device=input_ids.device)
        # rc(E[rc(x)]) per position is E[comp(x)] with its channels reversed
        return torch.cat([h, emb(comp[input_ids]).flip(-1)], dim=-1)

    def add_norm(self, norm, hidden, residual, swap: bool):
        """(normed, new residual) for one prenorm block (or the final norm)."""
        residual = hidden if residual is None else hidden + residual
        if self.residual_in_fp32 and residual.dtype != torch.float64:
            residual = residual.float()
        if not self.rcps:
            return rms_norm(residual, norm, hidden.dtype), residual
        a, b = residual.chunk(2, dim=-1)
        if swap:  # fused ordering: the "forward" half is the second one
            a, b = b, a
            residual = torch.cat([a, b], dim=-1)
        normed = torch.cat([rms_norm(a, norm, hidden.dtype),
                            rms_norm(b.flip(-1), norm, hidden.dtype).flip(-1)], dim=-1)
        return normed, residual

    def mix(self, mixer, h, rev_idx):
        if not self.rcps:
            return mixer(h, rev_idx)
        batch = h.shape[0]
        a, b = h.chunk(2, dim=-1)
        rev2 = None if rev_idx is None else torch.cat([rev_idx, rev_idx])
        out = mixer(torch.cat([a, rc(b, rev_idx)]), rev2)
        return torch.cat([out[:batch], rc(out[batch:], rev_idx)], dim=-1)

    def forward(self, input_ids, attention_mask=None):
        check_right_padded(attention_mask)
        batch, length = input_ids.shape
        rev_idx = reverse_index(attention_mask, length, batch, input_ids.device)
        hidden, residual = self.embed(input_ids), None
        for layer in self.layers:
            normed, residual = self.add_norm(layer.norm, hidden, residual, self.swap)
            hidden = self.mix(layer.mixer, normed, rev_idx)
        return self.add_norm(self.norm_f, hidden, residual, swap=False)[0]


class Classifier(ClassifierMixin, PreTrainedModel):
    config_class = Config
    base_model_prefix = "backbone"
    main_input_name = "input_ids"

    def __init__(self, config: Config):
        super().__init__(config)
        self.backbone = Backbone(config)
        self.score = nn.Linear(config.d_model, config.num_labels, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.backbone.embeddings["word_embeddings"]

    def sequence_logits(self, input_ids, attention_mask):
        h = self.backbone(input_ids, attention_mask)
        p = self.config.pooling
        if self.config.rcps:
            a, b = h.chunk(2, dim=-1)
            # pooling commutes with the per-row reversal, so pool(rc(b)) = flip_C(pool(b))
            return self.score((pool(a, attention_mask, p) + pool(b, attention_mask, p).flip(-1)) / 2)
        return self.score(pool(h, attention_mask, p))

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            if hasattr(module, "_dt_range"):  # dt_proj: bias = softplus^-1(dt), dt log-uniform
                init_uniform(module.weight, module.in_features ** -0.5)
                lo, hi = (math.log(v) for v in module._dt_range)
                dt = torch.exp(torch.rand(module.out_features) * (hi - lo) + lo).clamp(min=1e-4)
                init_fill(module.bias, dt + torch.log(-torch.expm1(-dt)))
                return
            init_normal(module.weight, std)
            if module.bias is not None:
                init_fill(module.bias, 0.0)
        elif isinstance(module, nn.Embedding):
            init_normal(module.weight, std)
        elif isinstance(module, RMSNorm):
            init_fill(module.weight, 1.0)
        elif isinstance(module, nn.Conv1d):
            bound = 1.0 / math.sqrt(module.kernel_size[0])
            init_uniform(module.weight, bound)
            if module.bias is not None:
                init_uniform(module.bias, bound)
        elif isinstance(module, Mamba):
            di, n = module.A_log.shape  # S4D-real: A[:, j] = -(j + 1)
            init_fill(module.A_log, torch.log(torch.arange(1, n + 1, dtype=torch.float32).repeat(di, 1)))
            init_fill(module.D, 1.0)


def map_key(release_name: str) -> str | None:
    """``caduceus.backbone.X`` -> ``backbone.X``, without the PS wrappers' ``.submodule``
    and ``.embedding`` levels."""
    if release_name.startswith(DROPPED) or not release_name.startswith(PREFIX + "backbone."):
        return None
    name = release_name[len(PREFIX):].replace(".submodule.", ".")
    return name.replace("word_embeddings.embedding.", "word_embeddings.")


# --------------------------------------------------------------------------- tiny release

def release_layout(rcps: bool, n_layer: int, d_model: int, vocab: int, d_state: int, d_conv: int,
                   expand: int, dt_rank: int, fused_add_norm: bool = True,
                   weight_tie: bool = True) -> dict:
    """Released tensor names -> shapes (checkpoints.md §6; PS names unverified)."""
    di, p = expand * d_model, PREFIX + "backbone."
    sub = ".submodule" if rcps else ""
    norm_sub = ".submodule" if rcps and not fused_add_norm else ""
    emb = "embeddings.word_embeddings" + (".embedding" if rcps else "")
    shapes = {f"{p}{emb}.weight": (vocab, d_model), f"{p}norm_f{norm_sub}.weight": (d_model,)}
    core = {"A_log": (di, d_state), "D": (di,), "conv1d.weight": (di, 1, d_conv), "conv1d.bias": (di,),
            "dt_proj.weight": (di, dt_rank), "dt_proj.bias": (di,),
            "x_proj.weight": (dt_rank + 2 * d_state, di)}
    proj = {"in_proj.weight": (2 * di, d_model), "out_proj.weight": (d_model, di)}
    for i in range(n_layer):
        layer = f"{p}layers.{i}."
        shapes[f"{layer}norm{norm_sub}.weight"] = (d_model,)
        for direction in ("mamba_fwd", "mamba_rev"):
            names = {**core, **proj} if direction == "mamba_fwd" or not weight_tie else core
            for k, s in names.items():
                shapes[f"{layer}mixer{sub}.{direction}.{k}"] = s
    return shapes


def _random_tensor(name: str, shape, g: torch.Generator) -> torch.Tensor:
    """Values of the right kind for each tensor (norms near 1, stable A, positive dt)."""
    noise = torch.randn(shape, generator=g)
    if name.endswith("norm.weight") or name.endswith("norm_f.weight") or ".submodule.weight" in name:
        return 1.0 + 0.2 * noise
    if name.endswith("A_log"):
        return torch.log(torch.arange(1, shape[1] + 1, dtype=torch.float32)).expand(shape) + 0.2 * noise
    if name.endswith(".D"):
        return 1.0 + 0.2 * noise
    if name.endswith("dt_proj.bias"):
        dt = torch.exp(torch.rand(shape, generator=g) * (math.log(0.5) - math.log(0.05)) + math.log(0.05))
        return dt + torch.log(-torch.expm1(-dt))
    if len(shape) >= 2:   # weights scaled by fan-in, as trained ones are: no underflowing scans
        return noise / math.sqrt(shape[-1])
    return 0.3 * noise


def write_tiny_release(out_dir, seed: int = 0, rcps: bool = False, d_model: int = 8, n_layer: int = 2,
                       d_state: int = 4, d_conv: int = 4, expand: int = 2, vocab_size: int = 12,
                       fused_add_norm: bool = True, residual_in_fp32: bool | None = None,
                       bidirectional_strategy: str = "add", bidirectional_weight_tie: bool = True) -> Path:
    """A tiny random Caduceus-PH (rcps False) or -PS release: config.json with the released
    keys and model.safetensors with the §6 names and shapes (built from the layout above,
    not from our modules). vocab_size is padded to a multiple of 8 for the embedding."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = math.ceil(vocab_size / 8) * 8
    comp = [RELEASE_COMPLEMENT.get(i, i) for i in range(vocab)]
    dt_rank = math.ceil(d_model / 16)
    config = {
        "architectures": ["CaduceusForMaskedLM"], "model_type": "caduceus",
        "auto_map": {"AutoConfig": "configuration_caduceus.CaduceusConfig",
                     "AutoModelForMaskedLM": "modeling_caduceus.CaduceusForMaskedLM"},
        "d_model": d_model, "n_layer": n_layer, "vocab_size": vocab_size, "pad_vocab_size_multiple": 8,
        "rms_norm": True, "fused_add_norm": fused_add_norm,
        "residual_in_fp32": rcps if residual_in_fp32 is None else residual_in_fp32,
        "norm_epsilon": 1e-5, "bidirectional": True, "bidirectional_strategy": bidirectional_strategy,
        "bidirectional_weight_tie": bidirectional_weight_tie, "rcps": rcps,
        "complement_map": {str(i): c for i, c in enumerate(comp)},
        "initializer_cfg": {"initializer_range": 0.02, "n_residuals_per_layer": 1,
                            "rescale_prenorm_residual": True},
        "ssm_cfg": {"d_state": d_state, "d_conv": d_conv, "expand": expand, "dt_rank": "auto",
                    "dt_min": 0.001, "dt_max": 0.1, "dt_init": "random", "dt_scale": 1.0,
                    "dt_init_floor": 1e-4, "conv_bias": True, "bias": False, "use_fast_path": True},
        "transformers_version": "4.38.1",
    }
    g = torch.Generator().manual_seed(seed)
    shapes = release_layout(rcps, n_layer, d_model, vocab, d_state, d_conv, expand, dt_rank,
                            fused_add_norm, bidirectional_weight_tie)
    tensors = {name: _random_tensor(name, shape, g).contiguous() for name, shape in shapes.items()}
    if rcps:
        cm = torch.tensor(comp, dtype=torch.int64)
        tensors[PREFIX + "backbone.embeddings.word_embeddings.complement_map"] = cm
        tensors["lm_head.complement_map"] = cm.clone()
    save_file(tensors, str(out_dir / "model.safetensors"))
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    return out_dir
