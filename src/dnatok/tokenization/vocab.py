"""Tokenizer specs and vocabularies: what each kind of tokenizer is, independent of encoding.

A *spec* is a small dict that fully describes a tokenizer (together with the training
corpus for BPE). ``canonical_spec`` validates it and fills defaults so that two spellings
of the same tokenizer compare equal and are saved identically.

Vocabulary layout shared by every kind: the five special tokens take ids 0-4 (the order
DNABERT uses), then the kind's own tokens.
"""
from __future__ import annotations

import itertools

from dnatok.errors import UserError
from dnatok.tokenization.learned_spec import LEARNED_KINDS

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(5)
N_SPECIAL = len(SPECIAL_TOKENS)

# The single-nucleotide alphabet every kind can represent. N is kept (it is frequent in
# genomes and in a few benchmark sequences); any other character becomes [UNK].
NUCLEOTIDES = ("A", "C", "G", "T")
ALPHABET = NUCLEOTIDES + ("N",)
COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A", "N": "N"}

KINDS = ("char", "kmer", "bpe", *LEARNED_KINDS)
# The vocabulary of an overlapping k-mer tokenizer has 4**k entries; beyond 12 the
# tables stop being practical (and no study uses it).
MAX_K = 12
MIN_BPE_VOCAB = N_SPECIAL + len(ALPHABET)
MAX_BPE_VOCAB = 1 << 20


def _int(spec: dict, key: str, lo: int, hi: int, default=None) -> int:
    value = spec.get(key, default)
    if value is None:
        raise UserError(f"tokenizer spec {spec!r}: '{key}' is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"tokenizer spec {spec!r}: '{key}' must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise UserError(f"tokenizer spec {spec!r}: '{key}' must be in [{lo}, {hi}], got {value}")
    return value


def canonical_spec(spec: dict) -> dict:
    """Validate ``spec`` and return a new dict with defaults filled in (extra keys kept).

    - ``{"kind": "char"}``
    - ``{"kind": "kmer", "k": 6, "stride": 1}``: overlapping k-mers (DNABERT); ``stride``
      defaults to 1. ``stride == k``: non-overlapping k-mers with single-nucleotide
      fallback (Nucleotide Transformer). Other strides are rejected.
    - ``{"kind": "bpe", "vocab_size": 4096}``: byte-pair encoding learned from a corpus;
      ``vocab_size`` counts everything (5 specials + A C G T N + merges).
      Optional: ``"trainer"`` ("dnatok", the default fast trainer, or "hf", the
      ``tokenizers`` library's trainer) and ``"max_corpus_bp"`` (read at most this many
      bp of the corpus, the first ones).
    - ``{"kind": "vq"}`` / ``{"kind": "hrq"}``: learned VQDNA tokenizers (one token per bp),
      trained from a corpus; every key is validated and unknown keys are rejected
      (``dnatok.tokenization.learned_spec``; meanings in ``dnatok.tokenization.learned``).
    """
    if not isinstance(spec, dict):
        raise UserError(f"tokenizer spec must be a JSON object, got {spec!r}")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise UserError(f"tokenizer spec {spec!r}: 'kind' must be one of {', '.join(KINDS)}")
    if kind in LEARNED_KINDS:
        from dnatok.tokenization.learned_spec import canonical_learned_spec
        return canonical_learned_spec(spec)
    out = dict(spec)
    if kind == "kmer":
        out["k"] = k = _int(spec, "k", 1, MAX_K)
        out["stride"] = stride = _int(spec, "stride", 1, k, default=1)
        if stride not in (1, k):
            raise UserError(f"tokenizer spec {spec!r}: 'stride' must be 1 (overlapping) "
                            f"or k={k} (non-overlapping)")
    elif kind == "bpe":
        out["vocab_size"] = _int(spec, "vocab_size", MIN_BPE_VOCAB, MAX_BPE_VOCAB)
        out["trainer"] = spec.get("trainer", "dnatok")
        if out["trainer"] not in ("dnatok", "hf"):
            raise UserError(f"tokenizer spec {spec!r}: 'trainer' must be 'dnatok' or 'hf'")
    if spec.get("max_corpus_bp") is not None:
        out["max_corpus_bp"] = _int(spec, "max_corpus_bp", 1, 1 << 62)
    return out


def default_name(spec: dict) -> str:
    """Short wildcard-friendly name: char, kmer6 (overlapping), kmer6s6, bpe4096, vq, hrq."""
    spec = canonical_spec(spec)
    if spec["kind"] in LEARNED_KINDS:
        from dnatok.tokenization.learned_spec import learned_default_name
        return learned_default_name(spec)
    if spec["kind"] == "char":
        return "char"
    if spec["kind"] == "kmer":
        return f"kmer{spec['k']}" + ("" if spec["stride"] == 1 else f"s{spec['stride']}")
    return f"bpe{spec['vocab_size']}"


def kmer_list(k: int) -> list[str]:
    """All 4**k k-mers over ACGT in lexicographic order (index = base-4 number, A=0 C=1 G=2 T=3)."""
    return ["".join(p) for p in itertools.product(NUCLEOTIDES, repeat=k)]


def fixed_vocab(spec: dict) -> list[str]:
    """Token strings by id for the kinds whose vocabulary does not depend on a corpus."""
    spec = canonical_spec(spec)
    if spec["kind"] == "char":
        return list(SPECIAL_TOKENS) + list(ALPHABET)
    if spec["kind"] == "kmer":
        kmers = kmer_list(spec["k"])
        if spec["stride"] == 1:
            return list(SPECIAL_TOKENS) + kmers
        # Non-overlapping: k-mers first, then single-nucleotide fallback tokens (k-mers of
        # length 1 are already single nucleotides when k == 1).
        singles = [c for c in ALPHABET if c not in set(kmers)]
        return list(SPECIAL_TOKENS) + kmers + singles
    raise UserError(f"{spec['kind']} vocabularies are learned from a corpus")
