"""DnaTokenizer: one interface over char, k-mer and BPE tokenizers saved as HF fast tokenizers.

Saved directory (``train_tokenizer(spec, out_dir)``):
- ``tokenizer.json``, ``tokenizer_config.json`` (+ whatever ``save_pretrained`` writes):
  loadable with ``transformers.AutoTokenizer.from_pretrained(dir)``; special tokens
  [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4; the post-processor adds ``[CLS] ... [SEP]``.
- ``dnatok_tokenizer.json``: the canonical spec, vocabulary size and, for BPE, a
  fingerprint of the training corpus.

What the HF tokenizer expects as text: the upper-cased DNA sequence, except for
overlapping k-mers (``stride == 1``), which a partition-based HF model cannot produce from
raw text: there, as in DNABERT, the HF tokenizer takes the space-separated k-mers
(``DnaTokenizer.hf_text(seq)`` builds them). Always going through ``DnaTokenizer`` avoids
having to think about it.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Iterable

import numpy as np

from dnatok.data.genome import reverse_complement as genome_reverse_complement
from dnatok.errors import UserError
from dnatok.io import atomic_path, read_json
from dnatok.tokenization import bpe_encode, fastpath
from dnatok.tokenization.bpe import hf_merges
from dnatok.tokenization.learned_spec import LEARNED_KINDS
from dnatok.tokenization.vocab import (ALPHABET, CLS_ID, COMPLEMENT, MASK_ID, N_SPECIAL, PAD_ID,
                                       SEP_ID, SPECIAL_TOKENS, UNK_ID, canonical_spec,
                                       fixed_vocab)

META_FILE = "dnatok_tokenizer.json"
FORMAT_VERSION = 1
_WHITESPACE = re.compile(r"\s")


def reverse_complement(seq: str) -> str:
    """Reverse complement of the upper-cased sequence (what the tokenizers encode); the one
    implementation is ``dnatok.data.genome.reverse_complement`` (IUPAC-aware)."""
    return genome_reverse_complement(seq.upper())


# ----------------------------------------------------------------------------- building


def _build_hf_tokenizer(spec: dict, vocab: list[str], merges: list[tuple[str, str]] | None):
    """The ``tokenizers.Tokenizer`` for a spec and its vocabulary (ids = list positions)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab_map = {tok: i for i, tok in enumerate(vocab)}
    kind = spec["kind"]
    if kind == "kmer":  # each pre-token (one k-mer or one character) is looked up whole
        model = models.WordLevel(vocab_map, unk_token="[UNK]")
    else:
        # char = BPE without merges: the word is split into characters, each looked up.
        model = models.BPE(vocab_map, merges or [], unk_token="[UNK]", fuse_unk=False)
    tok = Tokenizer(model)
    # HF has no upper-case normalizer; these replacements make AutoTokenizer users safe on
    # soft-masked (lower-case) genome text. DnaTokenizer upper-cases before encoding anyway.
    tok.normalizer = normalizers.Sequence(
        [normalizers.Replace(c.lower(), c) for c in ALPHABET])
    if kind == "kmer" and spec["stride"] == 1:
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        # No decoder: HF decode gives space-separated k-mers; DnaTokenizer.decode
        # reassembles the overlapping windows into the sequence.
    else:
        if kind == "kmer":
            # Leftmost k-mer of ACGT, else one character: the Nucleotide Transformer scheme.
            tok.pre_tokenizer = pre_tokenizers.Split(
                Regex(f"[ACGT]{{{spec['k']}}}|[\\s\\S]"), behavior="isolated")
        tok.decoder = decoders.Fuse()  # tokens are concatenated, not space-joined
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", CLS_ID), ("[SEP]", SEP_ID)])
    return tok


def _save(tok, spec: dict, out_dir, extra_meta: dict) -> "DnaTokenizer":
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_input_names=["input_ids", "attention_mask"])
    meta = {"format": FORMAT_VERSION, "spec": spec, "kind": spec["kind"],
            "vocab_size": tok.get_vocab_size(), **extra_meta}
    out_dir = Path(out_dir)
    with atomic_path(out_dir, is_dir=True) as tmp:
        hf.save_pretrained(str(tmp))
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return load_tokenizer(out_dir)


class _CorpusFingerprint:
    """Counts and hashes the training sequences as they stream past (for the metadata)."""

    def __init__(self):
        self.sha, self.sequences, self.bp = hashlib.sha256(), 0, 0

    def wrap(self, seqs: Iterable[str]):
        for s in seqs:
            self.sha.update(s.encode("ascii", "replace") + b"\n")
            self.sequences += 1
            self.bp += len(s)
            yield s

    def as_dict(self) -> dict:
        return {"sequences": self.sequences, "bp": self.bp, "sha256": self.sha.hexdigest()}


def limit_bp(seqs: Iterable[str], max_bp: int | None) -> Iterable[str]:
    """Upper-cased, stripped sequences, cut so that at most ``max_bp`` bp are yielded in
    total (the first ones, in corpus order: deterministic)."""
    left = max_bp
    for s in seqs:
        s = s.strip().upper()
        if not s:
            continue
        if left is not None:
            if left <= 0:
                return
            s = s[:left]
            left -= len(s)
        yield s


def train_tokenizer(spec: dict, out_dir, corpus: Iterable[str] | None = None) -> "DnaTokenizer":
    """Build the tokenizer described by ``spec``, save it to ``out_dir`` and return it.

    ``corpus`` (raw DNA strings) is required for BPE and the learned kinds vq/hrq
    (``dnatok.tokenization.learned``, which return a ``LearnedTokenizer``) and ignored
    otherwise. Same spec and same corpus give byte-identical files.
    """
    spec = canonical_spec(spec)
    if spec["kind"] in LEARNED_KINDS:
        if corpus is None:
            raise UserError(f"tokenizer spec {spec!r}: {spec['kind']} needs a training corpus")
        from dnatok.tokenization.learned_train import train_learned
        return train_learned(spec, out_dir, corpus)
    if spec["kind"] != "bpe":
        vocab = fixed_vocab(spec)
        return _save(_build_hf_tokenizer(spec, vocab, None), spec, out_dir, {})
    if corpus is None:
        raise UserError(f"tokenizer spec {spec!r}: BPE needs a training corpus")
    fp = _CorpusFingerprint()
    seqs = fp.wrap(limit_bp(corpus, spec.get("max_corpus_bp")))
    if spec["trainer"] == "hf":
        from dnatok.tokenization.bpe import train_bpe_hf
        vocab, merges = train_bpe_hf(seqs, spec["vocab_size"])
    else:
        from dnatok.tokenization.bpe import train_bpe
        vocab, merges = train_bpe(seqs, spec["vocab_size"])
    if fp.bp == 0:
        raise UserError("BPE training corpus is empty")
    tok = _build_hf_tokenizer(spec, list(SPECIAL_TOKENS) + vocab, merges)
    return _save(tok, spec, out_dir, {"corpus": fp.as_dict(), "merges": len(merges)})


def load_tokenizer(path) -> "DnaTokenizer":
    path = Path(path)
    meta = read_json(path / META_FILE, f"{path}: not a dnatok tokenizer directory (no {META_FILE})")
    if meta.get("kind") in LEARNED_KINDS:
        from dnatok.tokenization.learned import LearnedTokenizer
        return LearnedTokenizer(path, meta)
    return DnaTokenizer(path, meta)


# ----------------------------------------------------------------------------- tokenizer


def check_batch_args(seqs, max_len: int, add_special_tokens: bool, padding_side: str) -> int:
    """Validate ``encode_batch`` arguments; the number of special tokens per row."""
    if isinstance(seqs, str):
        raise UserError("encode_batch takes a list of sequences, not one string")
    if padding_side not in ("right", "left"):
        raise UserError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
    n_special = 2 if add_special_tokens else 0
    if max_len < n_special + 1:
        raise UserError(f"max_len={max_len} leaves no room for a token")
    return n_special


def pack_batch(ids, offsets, max_len, n_special, padding_side, pad_to_max):
    """Rows of flat token ids (``offsets``) as ``(input_ids, attention_mask)``: the
    layout of ``DnaTokenizer.encode_batch`` (shared by every tokenizer class)."""
    lengths = np.diff(offsets)
    batch = lengths.size
    keep = np.minimum(lengths, max_len - n_special)
    row_len = keep + n_special
    width = max_len if pad_to_max else int(row_len.max(initial=0))
    if (keep < lengths).any():  # truncation: the first `keep` tokens of each row
        within = np.arange(ids.size, dtype=np.int64) - np.repeat(offsets[:-1], lengths)
        ids = ids[within < np.repeat(keep, lengths)]
    input_ids = np.full((batch, width), PAD_ID, dtype=np.int64)
    s = 1 if n_special else 0
    inner = input_ids[:, s:width - s]  # the columns tokens can occupy
    cols = np.arange(inner.shape[1], dtype=np.int64)[None, :]
    uniform = batch > 0 and keep.min() == keep.max()
    # Boolean assignment fills cells in row-major order: the order of the tokens.
    # Rows of equal length (common: benchmark tasks) are one rectangular copy instead.
    if padding_side == "left":
        if uniform:
            inner[:, inner.shape[1] - int(keep[0]):] = ids.reshape(batch, int(keep[0]))
        else:
            inner[cols >= (inner.shape[1] - keep)[:, None]] = ids
        start = width - row_len
    else:
        if uniform:
            inner[:, :int(keep[0])] = ids.reshape(batch, int(keep[0]))
        else:
            inner[cols < keep[:, None]] = ids
        start = np.zeros(batch, dtype=np.int64)
    if n_special:
        rows = np.arange(batch)
        if padding_side == "right":  # [SEP] follows the tokens, before the padding
            input_ids[rows, start + row_len - 1] = SEP_ID
        else:
            input_ids[:, -1] = SEP_ID
        input_ids[rows, start] = CLS_ID
    # Encoded tokens are never [PAD] (id 0) and every other id is >= 1.
    mask = np.minimum(input_ids, 1)
    return input_ids, mask


def with_special_spans(ids, starts, ends, length: int):
    """``spans`` with [CLS] (zero-width at 0) and [SEP] (zero-width at ``length``) added."""
    ids = np.concatenate([[CLS_ID], ids, [SEP_ID]]).astype(np.int64)
    starts = np.concatenate([[0], starts, [length]]).astype(np.int64)
    ends = np.concatenate([[0], ends, [length]]).astype(np.int64)
    return ids, starts, ends


class BatchEncoding:
    """``encode``, ``encode_batch`` and ``encode_reverse_complement_batch`` from a
    tokenizer's ``_encode_flat(seqs) -> (flat ids, offsets)``: what every dnatok tokenizer
    (rule-based, BPE, learned) gives the training code."""

    def encode(self, seq: str) -> np.ndarray:
        """Token ids of one sequence (upper-cased first), without special tokens."""
        return self._encode_flat([seq])[0]

    def encode_batch(self, seqs: list[str], max_len: int, add_special_tokens: bool = True,
                     padding_side: str = "right", pad_to_max: bool = False):
        """``(input_ids, attention_mask)``, both int64 ``[B, L]``.

        Each row is ``[CLS] tokens [SEP]`` (without the specials if ``add_special_tokens``
        is false), truncated on the right to ``max_len`` tokens in all, then padded with
        [PAD] on ``padding_side`` to ``L`` = ``max_len`` (``pad_to_max``) or the longest row.
        """
        n_special = check_batch_args(seqs, max_len, add_special_tokens, padding_side)
        seqs = list(seqs)
        ids, offsets = self._encode_flat(seqs)
        return pack_batch(ids, offsets, max_len, n_special, padding_side, pad_to_max)

    def encode_reverse_complement_batch(self, seqs: list[str], max_len: int,
                                        add_special_tokens: bool = True,
                                        padding_side: str = "right", pad_to_max: bool = False):
        """``encode_batch`` of the reverse complement of each raw sequence."""
        if isinstance(seqs, str):
            raise UserError("encode_reverse_complement_batch takes a list of sequences")
        return self.encode_batch([reverse_complement(s) for s in seqs], max_len,
                                 add_special_tokens, padding_side, pad_to_max)


class DnaTokenizer(BatchEncoding):
    """A saved tokenizer plus fast encode/decode helpers returning numpy arrays."""

    pad_id, unk_id, cls_id, sep_id, mask_id = PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID
    special_ids = frozenset(range(N_SPECIAL))

    def __init__(self, path: Path, meta: dict):
        from tokenizers import Tokenizer
        from transformers import PreTrainedTokenizerFast

        self.path = Path(path)
        self.spec = canonical_spec(meta["spec"])
        self.kind = self.spec["kind"]
        self.meta = meta
        self.hf = PreTrainedTokenizerFast.from_pretrained(str(self.path))
        # A private raw tokenizer for batch encoding: free of any truncation/padding state,
        # and without the lower-case normalizer (the input is upper-cased before encoding,
        # so it would be a no-op that still costs ~10% of HF's encoding time).
        raw = json.loads((self.path / "tokenizer.json").read_text())
        raw["normalizer"] = None
        raw["truncation"] = raw["padding"] = None
        self._tk = Tokenizer.from_str(json.dumps(raw))
        size = self._tk.get_vocab_size()
        self.vocab_size = size
        vocab = self._tk.get_vocab()
        self.id_to_token = [None] * size
        for tok, i in vocab.items():
            self.id_to_token[i] = tok
        if self.id_to_token[:N_SPECIAL] != list(SPECIAL_TOKENS):
            raise UserError(f"{self.path}: special tokens are not {SPECIAL_TOKENS} at ids 0-4")
        if self.kind != "bpe" and self.id_to_token != fixed_vocab(self.spec):
            raise UserError(f"{self.path}: vocabulary does not match its spec {self.spec}")
        self._strings = np.array([("" if i < N_SPECIAL else t) for i, t in enumerate(self.id_to_token)],
                                 dtype=object)
        self.complement_map = None
        if self.kind == "char":
            index = {t: i for i, t in enumerate(self.id_to_token)}
            self.complement_map = [i if i < N_SPECIAL else index[COMPLEMENT[t]]
                                   for i, t in enumerate(self.id_to_token)]
            self._char_lut = fastpath.char_lut(self.id_to_token)
        if self.kind == "kmer" and self.spec["stride"] != 1:
            self._singles = fastpath.single_lut(self.id_to_token)
        self._bpe_table = None
        if self.kind == "bpe" and bpe_encode.available():
            model = raw["model"]
            table = bpe_encode.BpeMergeTable(model["vocab"], hf_merges(model),
                                             bpe_encode.byte_lut(model["vocab"]))
            # A hand-edited merge list may break the rank order the compiled encoder relies
            # on; HF's own encoder is then used (same ids, slower).
            self._bpe_table = table if table.is_monotone() else None

    def __repr__(self) -> str:
        return f"DnaTokenizer({self.spec}, vocab_size={self.vocab_size}, path='{self.path}')"

    # -- text the HF tokenizer expects
    def hf_text(self, seq: str) -> str:
        """The string to give ``self.hf`` for ``seq`` (see module docstring)."""
        seq = seq.upper()
        if self.kind == "kmer" and self.spec["stride"] == 1:
            k = self.spec["k"]
            return " ".join(seq[i:i + k] for i in range(len(seq) - k + 1))
        return seq

    # -- encoding
    def _encode_flat(self, seqs: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Flat ids (no special tokens) of all ``seqs`` and their row offsets."""
        if self.kind == "bpe":
            upper = [s.upper() for s in seqs]
            # Same rule as the numpy paths: whitespace is never part of a DNA sequence.
            if any(_WHITESPACE.search(s) for s in upper):
                raise UserError("sequence contains whitespace; pass one DNA sequence per string")
            if self._bpe_table is not None:
                buf, lengths = fastpath.to_buffer(upper)
                ids, counts = bpe_encode.encode(buf, lengths, self._bpe_table)
                return ids, fastpath._offsets(counts)
            encode = getattr(self._tk, "encode_batch_fast", self._tk.encode_batch)
            encs = encode(upper, add_special_tokens=False)
            counts = np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs))
            ids = np.fromiter((i for e in encs for i in e.ids), dtype=np.int64, count=int(counts.sum()))
            return ids, fastpath._offsets(counts)
        buf, lengths = fastpath.to_buffer(seqs)
        if self.kind == "char":
            return fastpath.encode_char(buf, lengths, self._char_lut)
        if self.spec["stride"] == 1:
            return fastpath.encode_kmer_overlapping(buf, lengths, self.spec["k"])
        return fastpath.encode_kmer_nonoverlapping(buf, lengths, self.spec["k"], self._singles)

    def spans(self, seq: str, add_special_tokens: bool = True):
        """``(ids, starts, ends)`` int64: each token of the untruncated row and the bases
        ``[start, end)`` of ``seq`` it spells; [CLS] sits at 0 and [SEP] at ``len(seq)``,
        both zero-width. Overlapping k-mers span their whole window (spans overlap)."""
        ids = self.encode(seq)
        if self.kind == "kmer" and self.spec["stride"] == 1:
            starts = np.arange(ids.size, dtype=np.int64)
            ends = starts + self.spec["k"]
        else:  # tokens tile the sequence; [UNK] stands for one character
            width = np.fromiter((1 if i == UNK_ID else len(self._strings[i]) for i in ids.tolist()),
                                dtype=np.int64, count=ids.size)
            ends = np.cumsum(width)
            starts = ends - width
            if ends.size and int(ends[-1]) != len(seq):
                raise RuntimeError(f"token widths sum to {int(ends[-1])}, not len(seq)={len(seq)}")
        return with_special_spans(ids, starts, ends, len(seq)) if add_special_tokens else (ids, starts, ends)

    def _pack(self, ids, offsets, max_len, n_special, padding_side, pad_to_max):
        return pack_batch(ids, offsets, max_len, n_special, padding_side, pad_to_max)

    # -- decoding
    def decode(self, ids) -> str:
        """The sequence spelled by ``ids``; special tokens are dropped, no spaces.

        Overlapping k-mers are reassembled from the windows: each position takes its base
        from any known window covering it; a position covered only by [UNK] windows (near
        a non-ACGT character in the input) becomes 'N'.
        """
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise UserError(f"token id out of range [0, {self.vocab_size})")
        if self.kind == "kmer" and self.spec["stride"] == 1:
            return self._decode_overlapping(ids)
        return "".join(self._strings[ids].tolist())

    def _decode_overlapping(self, ids: np.ndarray) -> str:
        k = self.spec["k"]
        ids = ids[(ids == UNK_ID) | (ids >= N_SPECIAL)]  # windows; other specials dropped
        if ids.size == 0:
            return ""
        out = np.full(ids.size + k - 1, ord("N"), dtype=np.uint8)
        known = ids >= N_SPECIAL
        value = np.where(known, ids - N_SPECIAL, 0)
        letters = np.frombuffer(b"ACGT", dtype=np.uint8)
        pos = np.flatnonzero(known)
        for j in range(k):  # base j of window i sits at position i + j
            digit = (value[pos] >> (2 * (k - 1 - j))) & 3
            out[pos + j] = letters[digit]
        return out.tobytes().decode("ascii")

    def tokens(self, ids) -> list[str]:
        return [self.id_to_token[i] for i in np.asarray(ids).reshape(-1)]

