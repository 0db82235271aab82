"""The released checkpoints' own tokenizers, reproduced, behind the ``DnaTokenizer`` interface.

One class, :class:`ReleasedTokenizer`, for five release kinds (§7 of checkpoints.md):

- ``dnabert2``: the release's ``tokenizer.json`` (BPE, Whitespace pre-tokenizer), encoded
  by HF ``tokenizers``; rows ``[CLS] … [SEP]``; pad ``[PAD]`` = 3.
- ``ntv2``: EsmTokenizer ``vocab.txt``; non-overlapping 6-mers from the left of each ACGT run,
  single nucleotides A T C G N (4102–4106) for leftovers and bases near N; a run of other
  characters is one ``<unk>`` (as EsmTokenizer's trie split gives); rows ``<cls> …``; pad 1.
- ``dnabert6``: BertTokenizer ``vocab.txt`` over the space-joined overlapping 6-mers; a
  window with a non-ACGT base is ``[UNK]``; rows ``[CLS] … [SEP]``; pad 0. ``unspaced=True``
  replays the study's ``--kmer -1`` bug (the raw sequence is one WordPiece word).
- ``gpt2``: byte-level BPE (``vocab.json`` + ``merges.txt`` or ``tokenizer.json``); nothing
  added; pad = eos = ``<|endoftext|>`` as the study set it.
- ``char``: the HyenaDNA / Caduceus fixed vocabulary; ``[SEP]`` appended only; pad 4;
  released padding side left.

Input is upper-cased before encoding, on purpose: the HF releases of DNABERT-2, NT-v2 and
DNABERT-6 map lower-case (soft-masked) bases to their unknown token (HyenaDNA's probably
too, unverified; Caduceus upper-cases); GPT-2 would give them other byte-level ids.
Not reproduced: BERT's basic tokenizer splits punctuation inside a window into several
``[UNK]``; here a window is always one token. Whitespace in a sequence is an error.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from dnatok.data.genome import reverse_complement as genome_reverse_complement
from dnatok.errors import UserError
from dnatok.io import atomic_path, read_json
from dnatok.tokenization import fastpath

KINDS = ("dnabert2", "ntv2", "dnabert6", "gpt2", "char")
META_FILE = "dnatok_tokenizer.json"
K = 6
NT_ORDER = "ATCG"  # both NT-v2 and DNABERT-6 enumerate 6-mers over A, T, C, G
KMERS = tuple("".join(p) for p in itertools.product(NT_ORDER, repeat=K))
NTV2_SPECIALS = ("<unk>", "<pad>", "<mask>", "<cls>", "<eos>", "<bos>")
NTV2_VOCAB = NTV2_SPECIALS + KMERS + tuple("ATCGN")
DNABERT6_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
DNABERT6_VOCAB = DNABERT6_SPECIALS + KMERS
CHAR_VOCAB = ("[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]", "A", "C", "G", "T", "N")
DNABERT2_SPECIALS = ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]")
EOT = "<|endoftext|>"
BERT_MAX_WORD = 100  # WordPiece max_input_chars_per_word


def _kmer_perm() -> np.ndarray:
    """6-mer value with A0 C1 G2 T3 digits (fastpath's) -> value with A0 T1 C2 G3 digits."""
    digit = np.array([NT_ORDER.index(c) for c in "ACGT"], dtype=np.int64)
    v = np.arange(4 ** K, dtype=np.int64)
    out = np.zeros_like(v)
    for j in range(K):
        out += digit[(v >> (2 * j)) & 3] << (2 * j)
    return out


_PERM = _kmer_perm()


def _lut(mapping: dict, default: int) -> np.ndarray:
    lut = np.full(256, default, dtype=np.int64)
    for c, i in mapping.items():
        lut[ord(c)] = i
    return lut


def _read_vocab_txt(path: Path, expected: tuple, what: str) -> list[str]:
    """Lines of ``vocab.txt``, checked equal to the rule-built vocabulary."""
    if not path.is_file():
        raise UserError(f"{path}: missing (the {what} vocabulary)")
    lines = path.read_text().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for i, (got, want) in enumerate(itertools.zip_longest(lines, expected)):
        if got != want:
            got = "missing (the file ends)" if got is None else repr(got)
            want = f"{want!r} there" if want is not None else f"only {len(expected)} lines"
            raise UserError(f"{path}: line {i + 1} is {got}, the {what} vocabulary has {want} "
                            "(not the released layout)")
    return lines


# ----------------------------------------------------------------------------- loading


def load_release_tokenizer(kind: str, ckpt_dir=None, unspaced: bool = False) -> "ReleasedTokenizer":
    """The release's tokenizer read from its own files in ``ckpt_dir`` (``char`` reads none)."""
    from tokenizers import Tokenizer

    if kind not in KINDS:
        raise UserError(f"unknown release tokenizer {kind!r}; known: {', '.join(KINDS)}")
    d = Path(ckpt_dir) if ckpt_dir is not None else None
    if kind != "char" and d is None:
        raise UserError(f"the {kind} tokenizer is read from a checkpoint folder; none given")
    tk = None
    if kind == "ntv2":
        _read_vocab_txt(d / "vocab.txt", NTV2_VOCAB, "NT-v2")
    elif kind == "dnabert6":
        _read_vocab_txt(d / "vocab.txt", DNABERT6_VOCAB, "DNABERT-6")
    elif kind == "dnabert2" or (kind == "gpt2" and (d / "tokenizer.json").is_file()):
        path = d / "tokenizer.json"
        if not path.is_file():
            raise UserError(f"{path}: missing (the DNABERT-2 tokenizer)")
        tk = Tokenizer.from_file(str(path))
    elif kind == "gpt2":
        tk = _gpt2_from_files(d / "vocab.json", d / "merges.txt")
    return ReleasedTokenizer(kind, tk, unspaced=unspaced, source=d)


def _gpt2_from_files(vocab: Path, merges: Path):
    """GPT-2's fast tokenizer as transformers builds it from vocab.json + merges.txt."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    for p in (vocab, merges):
        if not p.is_file():
            raise UserError(f"{p}: missing (the GPT-2 tokenizer needs vocab.json and merges.txt)")
    tk = Tokenizer(models.BPE.from_file(str(vocab), str(merges)))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.post_processor = processors.ByteLevel(trim_offsets=False)
    tk.add_special_tokens([AddedToken(EOT, special=True)])
    return tk


def load_saved(out_dir) -> "ReleasedTokenizer":
    """A tokenizer written by :meth:`ReleasedTokenizer.save`."""
    from tokenizers import Tokenizer

    d = Path(out_dir)
    meta_path = d / META_FILE
    meta = read_json(meta_path, f"{d}: not a saved tokenizer folder (no {META_FILE})")
    if meta.get("kind") != "released" or meta.get("release") not in KINDS:
        raise UserError(f"{meta_path}: not a released tokenizer "
                        f"(kind {meta.get('kind')!r}, release {meta.get('release')!r})")
    kind, tk = meta["release"], None
    if kind in ("dnabert2", "gpt2"):
        if not (d / "tokenizer.json").is_file():
            raise UserError(f"{d / 'tokenizer.json'}: missing")
        tk = Tokenizer.from_file(str(d / "tokenizer.json"))
    tok = ReleasedTokenizer(kind, tk, unspaced=bool(meta.get("unspaced")), source=d)
    if tok.vocab_size != meta["vocab_size"] or tok.pad_id != meta["pad_id"]:
        raise UserError(f"{meta_path}: vocab_size/pad_id {meta['vocab_size']}/{meta['pad_id']} do not "
                        f"match the tokenizer ({tok.vocab_size}/{tok.pad_id})")
    return tok


# ----------------------------------------------------------------------------- tokenizer


def _pack(ids, offsets, max_len, prefix, suffix, pad_id, padding_side, pad_to_max):
    """Rows ``prefix + first tokens + suffix`` of at most ``max_len``, padded with ``pad_id``
    on ``padding_side``; mask 1 at every non-pad position (both int64)."""
    lengths = np.diff(offsets)
    batch, n_pre = lengths.size, len(prefix)
    keep = np.minimum(lengths, max_len - n_pre - len(suffix))
    row_len = keep + n_pre + len(suffix)
    width = max_len if pad_to_max else int(row_len.max(initial=0))
    if (keep < lengths).any():  # truncation: the first `keep` tokens of each row
        within = np.arange(ids.size, dtype=np.int64) - np.repeat(offsets[:-1], lengths)
        ids = ids[within < np.repeat(keep, lengths)]
    out = np.full((batch, width), pad_id, dtype=np.int64)
    start = width - row_len if padding_side == "left" else np.zeros(batch, dtype=np.int64)
    cols = np.arange(width, dtype=np.int64)[None, :]
    first = (start + n_pre)[:, None]
    out[(cols >= first) & (cols < first + keep[:, None])] = ids  # row-major = token order
    rows = np.arange(batch)
    for j, t in enumerate(prefix):
        out[rows, start + j] = t
    for j, t in enumerate(suffix):
        out[rows, start + n_pre + keep + j] = t
    mask = ((cols >= start[:, None]) & (cols < (start + row_len)[:, None])).astype(np.int64)
    return out, mask


class ReleasedTokenizer:
    """A release's tokenizer with ``DnaTokenizer``'s encoding interface (numpy int64 arrays).

    ``hf``: the ``tokenizers.Tokenizer`` of a BPE release (dnabert2, gpt2), else None.
    """

    def __init__(self, kind: str, hf=None, unspaced: bool = False, source=None):
        if kind not in KINDS:
            raise UserError(f"unknown release tokenizer {kind!r}; known: {', '.join(KINDS)}")
        if unspaced and kind != "dnabert6":
            raise UserError("unspaced=True replays a DNABERT-6 bug; it applies to dnabert6 only")
        if (hf is None) != (kind not in ("dnabert2", "gpt2")):
            raise UserError(f"the {kind} tokenizer {'needs' if hf is None else 'takes no'} an HF tokenizer")
        self.kind, self.unspaced, self.source = kind, unspaced, source
        self.name = kind + ("-unspaced" if unspaced else "")
        self.complement_map = None
        self.default_padding_side = "right"
        self.unk_id = self.mask_id = self.cls_id = self.sep_id = None
        self._tk = None
        getattr(self, f"_init_{kind}")(hf)
        self.vocab_size = len(self.id_to_token)
        self._n_special = len(self._prefix) + len(self._suffix)

    def __repr__(self) -> str:
        return f"ReleasedTokenizer({self.name!r}, vocab_size={self.vocab_size}, source='{self.source}')"

    # -- per-kind setup: vocabulary, special ids, what a row adds
    def _init_char(self, _):
        self.id_to_token = list(CHAR_VOCAB)
        ix = {t: i for i, t in enumerate(CHAR_VOCAB)}
        self.cls_id, self.sep_id, self.mask_id, self.pad_id, self.unk_id = (
            ix["[CLS]"], ix["[SEP]"], ix["[MASK]"], ix["[PAD]"], ix["[UNK]"])
        self.special_ids = frozenset(range(7))
        comp = {"A": "T", "C": "G", "G": "C", "T": "A", "N": "N"}
        self.complement_map = [ix[comp[t]] if t in comp else i for i, t in enumerate(CHAR_VOCAB)]
        self.default_padding_side = "left"
        self._prefix, self._suffix = (), (self.sep_id,)
        self._lut = _lut({c: ix[c] for c in "ACGTN"}, self.unk_id)

    def _init_ntv2(self, _):
        self.id_to_token = list(NTV2_VOCAB)
        self.unk_id, self.pad_id, self.mask_id, self.cls_id = 0, 1, 2, 3
        self.special_ids = frozenset(range(len(NTV2_SPECIALS)))
        self._prefix, self._suffix = (self.cls_id,), ()
        first = len(NTV2_SPECIALS) + len(KMERS)
        self._lut = _lut({c: first + i for i, c in enumerate("ATCGN")}, self.unk_id)

    def _init_dnabert6(self, _):
        self.id_to_token = list(DNABERT6_VOCAB)
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = range(5)
        self.special_ids = frozenset(range(5))
        self._prefix, self._suffix = (self.cls_id,), (self.sep_id,)

    def _init_dnabert2(self, hf):
        self._set_hf(hf)
        if tuple(self.id_to_token[:5]) != DNABERT2_SPECIALS:
            raise UserError(f"{self.source}: DNABERT-2 special tokens are not {DNABERT2_SPECIALS} at ids 0-4")
        self.unk_id, self.cls_id, self.sep_id, self.pad_id, self.mask_id = range(5)
        self.special_ids = frozenset(range(5))
        self._prefix, self._suffix = (self.cls_id,), (self.sep_id,)

    def _init_gpt2(self, hf):
        self._set_hf(hf)
        eot = hf.token_to_id(EOT)
        if eot is None:
            raise UserError(f"{self.source}: GPT-2 vocabulary has no {EOT}")
        self.pad_id = self.unk_id = eot  # the study: pad = eos
        self.special_ids = frozenset({eot})
        self._prefix = self._suffix = ()

    def _set_hf(self, hf):
        from tokenizers import Tokenizer

        self._tk = Tokenizer.from_str(hf.to_str())  # private copy, free of padding/truncation
        self._tk.no_padding()
        self._tk.no_truncation()
        size = self._tk.get_vocab_size(with_added_tokens=True)
        self.id_to_token = [self._tk.id_to_token(i) for i in range(size)]
        if None in self.id_to_token:
            raise UserError(f"{self.source}: token ids are not contiguous 0..{size - 1}")

    # -- text the HF tokenizer expects
    def hf_text(self, seq: str) -> str:
        """The string to give the saved HF tokenizer for ``seq``: upper case; for DNABERT-6
        the space-joined overlapping 6-mers (unless ``unspaced``: the raw sequence)."""
        seq = seq.upper()
        if self.kind == "dnabert6" and not self.unspaced:
            return " ".join(seq[i:i + K] for i in range(len(seq) - K + 1))
        return seq

    # -- encoding
    def _encode_flat(self, seqs: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Flat ids (no special tokens) of all ``seqs`` and their row offsets."""
        if self._tk is not None:
            upper = [s.upper() for s in seqs]
            fastpath._check_no_space(fastpath._NUC_CODE[fastpath.to_buffer(upper)[0]])
            encode = getattr(self._tk, "encode_batch_fast", self._tk.encode_batch)
            encs = encode(upper, add_special_tokens=False)
            counts = np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs))
            ids = np.fromiter((i for e in encs for i in e.ids), dtype=np.int64, count=int(counts.sum()))
            return ids, fastpath._offsets(counts)
        buf, lengths = fastpath.to_buffer(seqs)
        if self.kind == "char":
            return fastpath.encode_char(buf, lengths, self._lut)
        if self.kind == "ntv2":
            ids, offsets, _ = self._ntv2(buf, lengths)
            return ids, offsets
        if self.unspaced:
            return self._unspaced(buf, lengths)
        ids, offsets = fastpath.encode_kmer_overlapping(buf, lengths, K)  # ACGT order + 5, UNK 1
        known = ids >= 5
        ids[known] = 5 + _PERM[ids[known] - 5]
        return ids, offsets

    def _ntv2(self, buf, lengths):
        """(ids, offsets, starts): NT-v2 ids and where each token starts in ``buf``."""
        ids, offsets = fastpath.encode_kmer_nonoverlapping(buf, lengths, K, self._lut)
        kmer = (ids >= 5) & (ids < 5 + len(KMERS))  # fastpath's k-mer ids; singles are 0 or >= 4102
        ids[kmer] = len(NTV2_SPECIALS) + _PERM[ids[kmer] - 5]
        width = np.where(kmer, K, 1)
        starts = np.cumsum(width) - width
        unk = ids == self.unk_id
        if unk.any():  # EsmTokenizer: a run of unknown characters is one <unk>
            row_start = np.zeros(ids.size, dtype=bool)
            row_start[offsets[:-1][offsets[:-1] < ids.size]] = True
            drop = unk & ~row_start
            drop[1:] &= unk[:-1]
            drop[0] = False
            kept = np.flatnonzero(~drop)
            ids, starts, offsets = ids[kept], starts[kept], np.searchsorted(kept, offsets)
        return ids, offsets.astype(np.int64), starts

    def _unspaced(self, buf, lengths):
        """``--kmer -1``: each whole sequence is one WordPiece word; only a word that is
        exactly one vocabulary 6-mer survives, anything else is [UNK]; empty: no token."""
        codes = fastpath._NUC_CODE[buf]
        fastpath._check_no_space(codes)
        starts = np.cumsum(lengths) - lengths
        ids = []
        for s, n in zip(starts.tolist(), lengths.tolist()):
            if n == 0:
                continue
            c = codes[s:s + n]
            ok = n == K and c.max() < fastpath.OTHER
            ids.append(5 + int(_PERM[int((c.astype(np.int64) << (2 * np.arange(K - 1, -1, -1))).sum())])
                       if ok else self.unk_id)
        return np.asarray(ids, dtype=np.int64), fastpath._offsets(np.minimum(lengths, 1))

    def encode(self, seq: str) -> np.ndarray:
        """Token ids of one sequence without special tokens. Upper-cased first, on purpose:
        the DNABERT-2, NT-v2 and DNABERT-6 HF tokenizers give lower-case bases their unknown
        token (tested); Caduceus upper-cases as here."""
        return self._encode_flat([seq])[0]

    def encode_batch(self, seqs: list[str], max_len: int, add_special_tokens: bool = True,
                     padding_side: str = "right", pad_to_max: bool = False):
        """``(input_ids, attention_mask)``, both int64 ``[B, L]``: each row is the release's
        specials around the tokens (if ``add_special_tokens``), truncated to ``max_len``
        keeping the first tokens and the specials, padded with the release's pad id on
        ``padding_side`` to ``max_len`` (``pad_to_max``) or the longest row."""
        if isinstance(seqs, str):
            raise UserError("encode_batch takes a list of sequences, not one string")
        if padding_side not in ("right", "left"):
            raise UserError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        prefix, suffix = (self._prefix, self._suffix) if add_special_tokens else ((), ())
        if max_len < len(prefix) + len(suffix) + 1:
            raise UserError(f"max_len={max_len} leaves no room for a token")
        ids, offsets = self._encode_flat(list(seqs))
        return _pack(ids, offsets, max_len, prefix, suffix, self.pad_id, padding_side, pad_to_max)

    def encode_reverse_complement_batch(self, seqs: list[str], max_len: int,
                                        add_special_tokens: bool = True,
                                        padding_side: str = "right", pad_to_max: bool = False):
        """``encode_batch`` of the reverse complement of each (upper-cased) sequence."""
        if isinstance(seqs, str):
            raise UserError("encode_reverse_complement_batch takes a list of sequences")
        return self.encode_batch([genome_reverse_complement(s.upper()) for s in seqs], max_len,
                                 add_special_tokens, padding_side, pad_to_max)

    def spans(self, seq: str, add_special_tokens: bool = True):
        """``(ids, starts, ends)`` int64: each token of the untruncated row and the bases
        ``[start, end)`` of ``seq`` it spells; specials are zero-width where they sit (a
        prefix at 0, a suffix at ``len(seq)``); DNABERT-6 windows overlap."""
        n = len(seq)
        if self._tk is not None:
            fastpath._check_no_space(fastpath._NUC_CODE[fastpath.to_buffer([seq])[0]])
            enc = self._tk.encode(seq.upper(), add_special_tokens=False)
            ids = np.asarray(enc.ids, dtype=np.int64)
            se = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
            starts, ends = se[:, 0], se[:, 1]
        elif self.kind == "ntv2":
            buf, lengths = fastpath.to_buffer([seq])
            ids, _, starts = self._ntv2(buf, lengths)
            ends = np.append(starts[1:], n)[:starts.size]  # tokens tile the sequence
        else:
            ids = self.encode(seq)
            starts = np.arange(ids.size, dtype=np.int64)
            width = K if self.kind == "dnabert6" else 1
            ends = np.full(ids.size, n, dtype=np.int64) if self.unspaced else starts + width
        if add_special_tokens:
            p, s = len(self._prefix), len(self._suffix)
            ids = np.concatenate([self._prefix, ids, self._suffix]).astype(np.int64)
            starts = np.concatenate([np.zeros(p, np.int64), starts, np.full(s, n, np.int64)])
            ends = np.concatenate([np.zeros(p, np.int64), ends, np.full(s, n, np.int64)])
        return ids, starts.astype(np.int64), ends.astype(np.int64)

    def tokens(self, ids) -> list[str]:
        return [self.id_to_token[i] for i in np.asarray(ids).reshape(-1)]

    # -- saving as an HF tokenizer folder
    def _special_kwargs(self) -> dict:
        return {
            "dnabert2": dict(unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                             pad_token="[PAD]", mask_token="[MASK]"),
            "ntv2": dict(unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", cls_token="<cls>",
                         bos_token="<bos>"),
            "dnabert6": dict(unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                             pad_token="[PAD]", mask_token="[MASK]"),
            "gpt2": dict(bos_token=EOT, eos_token=EOT, unk_token=EOT, pad_token=EOT),
            "char": dict(cls_token="[CLS]", sep_token="[SEP]", bos_token="[BOS]", mask_token="[MASK]",
                         pad_token="[PAD]", unk_token="[UNK]"),
        }[self.kind]

    def hf_tokenizer(self):
        """A ``tokenizers.Tokenizer`` giving the same ids on :meth:`hf_text` (rows with specials)."""
        from tokenizers import Tokenizer

        if self._tk is not None:
            return Tokenizer.from_str(self._tk.to_str())
        return _build_rule_tokenizer(self.kind, self.id_to_token)

    def save(self, out_dir) -> Path:
        """Write an HF tokenizer folder (``AutoTokenizer.from_pretrained`` loads it) plus
        ``dnatok_tokenizer.json``; returns the folder."""
        from transformers import PreTrainedTokenizerFast

        hf = PreTrainedTokenizerFast(tokenizer_object=self.hf_tokenizer(),
                                     padding_side=self.default_padding_side,
                                     model_input_names=["input_ids", "attention_mask"],
                                     **self._special_kwargs())
        meta = {"kind": "released", "release": self.kind, "vocab_size": self.vocab_size,
                "pad_id": self.pad_id, "unspaced": self.unspaced}
        out_dir = Path(out_dir)
        with atomic_path(out_dir, is_dir=True) as tmp:
            hf.save_pretrained(str(tmp))
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return out_dir


def _build_rule_tokenizer(kind: str, vocab: list[str]):
    """The HF fast tokenizer of a rule-based release (ntv2, dnabert6, char)."""
    from tokenizers import (Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers,
                            processors)

    index = {t: i for i, t in enumerate(vocab)}
    if kind == "ntv2":
        tk = Tokenizer(models.WordLevel(index, unk_token="<unk>"))
        # leftmost 6-mer of ACGT, else one nucleotide, else a run of unknown characters
        tk.pre_tokenizer = pre_tokenizers.Split(Regex("[ACGT]{6}|[ACGTN]|[^ACGTN]+"), behavior="isolated")
        tk.decoder = decoders.Fuse()
        specials, single, pair, used = NTV2_SPECIALS, "<cls> $A", "<cls> $A $B:1", ("<cls>",)
    elif kind == "dnabert6":  # what transformers' BertConverter builds for BertTokenizer
        tk = Tokenizer(models.WordPiece(index, unk_token="[UNK]", max_input_chars_per_word=BERT_MAX_WORD))
        tk.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                   strip_accents=False, lowercase=False)
        tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tk.decoder = decoders.WordPiece()
        specials, single, pair = DNABERT6_SPECIALS, "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1"
        used = ("[CLS]", "[SEP]")
    else:  # char: one token per character; lower case mapped up as Caduceus does
        tk = Tokenizer(models.BPE(index, [], unk_token="[UNK]", fuse_unk=False))
        tk.normalizer = normalizers.Sequence([normalizers.Replace(c.lower(), c) for c in "ACGTN"])
        tk.decoder = decoders.Fuse()
        specials, single, pair, used = CHAR_VOCAB[:7], "$A [SEP]", "$A [SEP] $B:1 [SEP]:1", ("[SEP]",)
    tk.add_special_tokens(list(specials))
    tk.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[(t, index[t]) for t in used])
    return tk


# ----------------------------------------------------------------------------- writing


def _random_dna(seed: int, n: int = 48, length: int = 240) -> list[str]:
    """Deterministic random DNA with some repeats (so BPE has merges worth learning)."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    out = []
    for _ in range(n):
        s = letters[rng.choice(4, size=length, p=[0.3, 0.2, 0.2, 0.3])].tobytes().decode()
        out.append(s + "TATA" * int(rng.integers(0, 6)) + s[: int(rng.integers(0, 40))])
    return out


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_release_tokenizer(kind: str, out_dir, seed: int = 0) -> Path:
    """Write ``kind``'s tokenizer files in the release's layout into ``out_dir`` (created;
    other files kept): rule-built vocabularies in full, small trained BPEs for dnabert2 and
    gpt2 (``seed`` picks their training strings)."""
    if kind not in KINDS:
        raise UserError(f"unknown release tokenizer {kind!r}; known: {', '.join(KINDS)}")
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    if kind in ("ntv2", "dnabert6"):
        vocab = NTV2_VOCAB if kind == "ntv2" else DNABERT6_VOCAB
        (d / "vocab.txt").write_text("\n".join(vocab) + "\n")
        if kind == "ntv2":  # §7: EsmTokenizer, eos_token null, model_max_length 2048
            specials = {"unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
                        "cls_token": "<cls>"}
            config = {"tokenizer_class": "EsmTokenizer", "model_max_length": 2048, "eos_token": None,
                      **specials}
        else:  # §3: tokenizer_config = {"do_lower_case": false, "max_len": 512}
            specials = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                        "cls_token": "[CLS]", "mask_token": "[MASK]"}
            config = {"do_lower_case": False, "max_len": 512}
        _write_json(d / "tokenizer_config.json", config)
        _write_json(d / "special_tokens_map.json", specials)
    elif kind == "dnabert2":
        _write_json(d / "tokenizer.json", _dnabert2_json(seed))
        _write_json(d / "tokenizer_config.json", {
            "tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]", "cls_token": "[CLS]",
            "sep_token": "[SEP]", "pad_token": "[PAD]", "mask_token": "[MASK]"})
    elif kind == "gpt2":
        vocab, merges = _gpt2_bpe(seed)
        _write_json(d / "vocab.json", vocab)
        (d / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
        _write_json(d / "tokenizer_config.json", {
            "tokenizer_class": "GPT2Tokenizer", "model_max_length": 2048, "add_prefix_space": False,
            "bos_token": EOT, "eos_token": EOT, "unk_token": EOT})
        _write_json(d / "special_tokens_map.json", {"bos_token": EOT, "eos_token": EOT, "unk_token": EOT})
    else:  # char: fixed vocabulary, nothing to read; the config only records the layout
        _write_json(d / "tokenizer_config.json", {
            "characters": list("ACGTN"), "model_max_length": 1024, "padding_side": "left"})
    return d


def _train_bpe(seqs, vocab_size: int, pre_tokenizer, specials, alphabet):
    from tokenizers import Tokenizer, models, trainers

    tk = Tokenizer(models.BPE(unk_token=specials[0] if specials else None))
    tk.pre_tokenizer = pre_tokenizer
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(specials),
                                  initial_alphabet=alphabet, show_progress=False)
    tk.train_from_iterator(seqs, trainer=trainer)
    model = json.loads(tk.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return model["vocab"], merges


def _dnabert2_json(seed: int) -> dict:
    """A small BPE in the released DNABERT-2 ``tokenizer.json`` layout (key for key)."""
    from tokenizers import pre_tokenizers

    vocab, merges = _train_bpe(_random_dna(seed), 64, pre_tokenizers.Whitespace(),
                               DNABERT2_SPECIALS, list("ACGT"))
    added = [{"id": i, "special": True, "content": t, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False} for i, t in enumerate(DNABERT2_SPECIALS)]
    spec = lambda t, type_id=0: {"SpecialToken": {"id": t, "type_id": type_id}}  # noqa: E731
    seq = lambda a, type_id=0: {"Sequence": {"id": a, "type_id": type_id}}  # noqa: E731
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None, "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [spec("[CLS]"), seq("A"), spec("[SEP]")],
            "pair": [spec("[CLS]"), seq("A"), spec("[SEP]"), seq("B", 1), spec("[SEP]", 1)],
            "special_tokens": {t: {"id": t, "ids": [DNABERT2_SPECIALS.index(t)], "tokens": [t]}
                               for t in ("[CLS]", "[SEP]")}},
        "decoder": None,
        "model": {"type": "BPE", "dropout": None, "unk_token": "[UNK]", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False,
                  "vocab": dict(sorted(vocab.items(), key=lambda kv: kv[1])),
                  "merges": [f"{a} {b}" for a, b in merges]},
    }


def _gpt2_bpe(seed: int):
    """(vocab.json dict, merges) of a small byte-level BPE with ``<|endoftext|>`` last."""
    from tokenizers import pre_tokenizers

    vocab, merges = _train_bpe(_random_dna(seed), 320, pre_tokenizers.ByteLevel(add_prefix_space=False),
                               (), pre_tokenizers.ByteLevel.alphabet())
    vocab = dict(sorted(vocab.items(), key=lambda kv: kv[1]))
    vocab[EOT] = len(vocab)
    return vocab, merges
