"""Vectorised numpy encoders for the char and k-mer tokenizers.

The HF fast tokenizer is the reference (and what other tools load), but it tracks offsets
and alignments for every character, which caps it near 10 Mbp/s. For the kinds whose
vocabulary is a fixed function of the sequence, the same ids come from a byte lookup table
plus a few array operations on the concatenated batch (>100 Mbp/s). Tests check that the
ids are identical to the saved HF tokenizer's.

All functions take ``buf`` (uint8 bytes of the concatenated, already upper-cased sequences)
and ``lengths`` (int64 length of each sequence, in characters = bytes; non-ASCII
characters were replaced one-for-one by '?') and return ``(ids, offsets)``: the flat
int64 token ids of all sequences and the int64 row offsets (``len(lengths) + 1``).
"""
from __future__ import annotations

import numpy as np

from dnatok.errors import UserError
from dnatok.tokenization.vocab import ALPHABET, N_SPECIAL, NUCLEOTIDES, UNK_ID

# Code of each byte for k-mer arithmetic: A C G T -> 0..3, anything else -> OTHER,
# whitespace -> SPACE (rejected: the overlapping k-mer HF text uses spaces as separators
# and sequences never legitimately contain them).
OTHER, SPACE = 4, 5
_NUC_CODE = np.full(256, OTHER, dtype=np.uint8)
for _i, _c in enumerate(NUCLEOTIDES):
    _NUC_CODE[ord(_c)] = _i
for _c in " \t\n\r\v\f":
    _NUC_CODE[ord(_c)] = SPACE


def to_buffer(seqs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Upper-case and concatenate ``seqs`` into one uint8 buffer (+ per-sequence lengths)."""
    joined = "".join(seqs).upper()
    # 'replace' maps each non-ASCII character to exactly one '?', so byte positions equal
    # character positions (HF also counts characters); '?' is not in any vocabulary.
    buf = np.frombuffer(joined.encode("ascii", "replace"), dtype=np.uint8)
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    if buf.size != int(lengths.sum()):  # str.upper() changed a length (e.g. German sharp s)
        raise UserError("sequence contains characters whose upper-case form changes length")
    return buf, lengths


def _check_no_space(codes: np.ndarray) -> None:
    # max() first: one fast pass in the usual case of pure ACGT(N) text.
    if codes.size and codes.max() >= SPACE and (codes == SPACE).any():
        raise UserError("sequence contains whitespace; pass one DNA sequence per string")


def _offsets(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def ragged_arange(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` for each (s, c), without a Python loop."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    out_starts = np.cumsum(counts) - counts
    # Each output element i belongs to row r: value = starts[r] + (i - out_starts[r]).
    shift = np.repeat(np.asarray(starts, dtype=np.int64) - out_starts, counts)
    return np.arange(total, dtype=np.int64) + shift


def char_lut(vocab: list[str]) -> np.ndarray:
    """byte -> token id for the char tokenizer (unknown characters -> [UNK])."""
    lut = np.full(256, UNK_ID, dtype=np.int64)
    for i, tok in enumerate(vocab):
        if i >= N_SPECIAL:
            lut[ord(tok)] = i
    return lut


def encode_char(buf, lengths, lut):
    _check_no_space(_NUC_CODE[buf])
    return lut[buf], _offsets(lengths)


def window_codes(codes: np.ndarray, k: int) -> np.ndarray:
    """Base-4 value of every length-k window of ``codes`` (uint8 values 0..3), ``len - k + 1``
    entries, in the narrowest unsigned type that holds 4**k.

    Built by doubling (windows of length m and n combine into m + n) so the cost grows with
    log2(k) passes instead of k; narrow types halve the memory traffic, which is what
    limits these passes.
    """
    n = codes.size
    dt = np.uint16 if k <= 8 else np.uint32
    if n < k:
        return np.zeros(0, dtype=dt)
    known = {1: codes}

    def win(length: int) -> np.ndarray:
        if length not in known:
            half = length // 2
            left, right = win(half), win(length - half)
            m = n - length + 1
            out = np.multiply(left[:m], 4 ** (length - half), dtype=dt)
            np.add(out, right[half:half + m], out=out, casting="unsafe")
            known[length] = out
        return known[length]

    return win(k)


def _window_has_other(codes: np.ndarray, k: int) -> np.ndarray | None:
    """Boolean per window: does it contain a non-ACGT character? None when none does."""
    if not codes.size or codes.max() < OTHER:
        return None
    other = codes >= OTHER
    cs = np.zeros(codes.size + 1, dtype=np.int64)
    np.cumsum(other, out=cs[1:])
    return (cs[k:] - cs[:-k]) > 0


def encode_kmer_overlapping(buf, lengths, k: int):
    """DNABERT k-mers: one token per window start; windows with a non-ACGT base -> [UNK]."""
    codes = _NUC_CODE[buf]
    _check_no_space(codes)
    counts = np.maximum(lengths - k + 1, 0)
    if lengths.size and lengths.min() == lengths.max() and lengths[0] >= k:
        # Equal lengths (one sequence, or a benchmark task): pad the concatenation so that
        # it reshapes to [B, L]; the valid windows are then the first L - k + 1 columns.
        n_seq, length = lengths.size, int(lengths[0])
        padded = np.concatenate([codes, np.zeros(k - 1, dtype=codes.dtype)])
        w = window_codes(padded, k).reshape(n_seq, length)[:, :length - k + 1]
        ids = np.add(w, N_SPECIAL, dtype=np.int64).reshape(-1)
        bad = _window_has_other(padded, k)
        if bad is not None:
            ids[bad.reshape(n_seq, length)[:, :length - k + 1].reshape(-1)] = UNK_ID
        return ids, _offsets(counts)
    w = window_codes(codes, k)  # narrow ints; widened to int64 only once, at the end
    bad = _window_has_other(codes, k)
    if lengths.size > 1 and w.size:
        # Windows computed over the concatenation: drop the k - 1 that straddle each
        # boundary between two sequences (and all windows of sequences shorter than k).
        ends = np.cumsum(lengths)
        starts = ends - lengths
        drop = ragged_arange(np.maximum(starts, ends - k + 1), np.minimum(lengths, k - 1))
        keep = np.ones(w.size, dtype=bool)
        keep[drop[drop < w.size]] = False
        w = w[keep]
        if bad is not None:
            bad = bad[keep]
    ids = np.add(w, N_SPECIAL, dtype=np.int64)
    if bad is not None:
        ids[bad] = UNK_ID
    return ids, _offsets(counts)


def single_lut(vocab: list[str]) -> np.ndarray:
    """byte -> id of the single-character token (A C G T N) or [UNK]."""
    lut = np.full(256, UNK_ID, dtype=np.int64)
    index = {tok: i for i, tok in enumerate(vocab)}
    for c in ALPHABET:
        lut[ord(c)] = index[c]
    return lut


def encode_kmer_nonoverlapping(buf, lengths, k: int, singles: np.ndarray):
    """Nucleotide Transformer k-mers: within each maximal run of ACGT (runs also end at
    sequence boundaries) take k-mers from the left, then single nucleotides for the
    remainder; every non-ACGT character is its own single token (N, else [UNK]).

    Identical to the HF tokenizer's regex pre-tokenizer ``[ACGT]{k}|.`` scanning left to right.
    """
    codes = _NUC_CODE[buf]
    _check_no_space(codes)
    n = codes.size
    seq_starts = np.cumsum(lengths) - lengths
    acgt = codes < OTHER
    if acgt.all():
        return _nonoverlapping_clean(codes, buf, lengths, seq_starts, k, singles)
    # A run starts at an ACGT position whose predecessor is not ACGT or which begins a sequence.
    boundary = np.zeros(n, dtype=bool)
    boundary[seq_starts[lengths > 0]] = True
    prev_acgt = np.empty(n, dtype=bool)
    if n:
        prev_acgt[0] = False
        prev_acgt[1:] = acgt[:-1]
    run_start = acgt & (boundary | ~prev_acgt)
    pos = np.arange(n, dtype=np.int64)
    start_of = np.maximum.accumulate(np.where(run_start, pos, 0)) if n else pos
    offset = pos - start_of
    # Length of the run each position belongs to: distance from its start to the run's end.
    run_starts = np.flatnonzero(run_start)
    run_end_mask = acgt.copy()
    if n:
        nxt = np.empty(n, dtype=bool)
        nxt[:-1] = acgt[1:] & ~run_start[1:]
        nxt[-1] = False
        run_end_mask &= ~nxt
    run_ends = np.flatnonzero(run_end_mask) + 1
    run_full = (run_ends - run_starts) // k * k  # bp of each run covered by whole k-mers
    run_id = np.cumsum(run_start) - 1
    full = np.where(acgt, run_full[np.maximum(run_id, 0)] if run_starts.size else 0, 0)
    kmer_start = acgt & (offset < full) & (offset % k == 0)
    single = ~acgt | (offset >= full)
    tok_pos = np.flatnonzero(kmer_start | single)
    is_kmer = kmer_start[tok_pos]
    kpos = tok_pos[is_kmer]
    kval = np.zeros(kpos.size, dtype=np.int64)
    for j in range(k):  # k gathers of n/k elements each: n in total
        kval = kval * 4 + codes[kpos + j]
    ids = singles[buf[tok_pos]]
    ids[is_kmer] = kval + N_SPECIAL
    offsets = np.searchsorted(tok_pos, np.append(seq_starts, n)).astype(np.int64)
    return ids, offsets


def _nonoverlapping_clean(codes, buf, lengths, starts, k, singles):
    """Non-overlapping k-mers when every character is ACGT: each sequence is floor(L/k)
    k-mers from its start, then L mod k single nucleotides."""
    if lengths.size and lengths.min() == lengths.max():
        # Equal lengths: a [B, L] view; k strided passes build the k-mer values.
        n_seq, length = lengths.size, int(lengths[0])
        nk = length // k
        grid = codes.reshape(n_seq, length)
        blocks = grid[:, :nk * k].reshape(n_seq, nk, k)
        acc = np.zeros((n_seq, nk), dtype=np.uint16 if k <= 8 else np.uint32)
        for j in range(k):  # in place: no temporaries
            acc <<= 2
            acc += blocks[:, :, j]
        out = np.empty((n_seq, nk + length - nk * k), dtype=np.int64)
        np.add(acc, N_SPECIAL, out=out[:, :nk], dtype=np.int64)
        out[:, nk:] = singles[buf.reshape(n_seq, length)[:, nk * k:]]
        return out.reshape(-1), _offsets(np.full(n_seq, out.shape[1], dtype=np.int64))
    n_k = lengths // k
    n_s = lengths - n_k * k
    counts = n_k + n_s
    offsets = _offsets(counts)
    ids = np.empty(int(offsets[-1]), dtype=np.int64)
    kpos = ragged_arange(np.zeros_like(starts), n_k) * k + np.repeat(starts, n_k)
    kval = np.zeros(kpos.size, dtype=np.int64)
    for j in range(k):  # k gathers of n/k elements each: n in total
        kval *= 4
        kval += codes[kpos + j]
    kval += N_SPECIAL
    ids[ragged_arange(offsets[:-1], n_k)] = kval
    if n_s.any():
        spos = ragged_arange(starts + n_k * k, n_s)
        ids[ragged_arange(offsets[:-1] + n_k, n_s)] = singles[buf[spos]]
    return ids, offsets
