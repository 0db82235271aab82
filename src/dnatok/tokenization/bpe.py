"""BPE training for DNA.

Conventions shared by both trainers:
- the alphabet is A C G T N; N (and any other non-ACGT character) is never merged: the
  training sequences are cut at such characters, so learned tokens are pure ACGT. Long N
  runs in genomes would otherwise fill the vocabulary with N-run tokens;
- the vocabulary size counts the 5 special tokens and the 5 letters;
- a merge whose result spells an existing token reuses that token (as HF does).

Both return ``(vocab, merges)``: the token strings after the special tokens, in id order
(A C G T N first, then merge results), and the merges as (left, right) string pairs in
rank order, ready for ``tokenizers.models.BPE``.
"""
from __future__ import annotations

import heapq
import json
import re
from typing import Iterable

import numpy as np

from dnatok.errors import UserError
from dnatok.tokenization.vocab import ALPHABET, N_SPECIAL, SPECIAL_TOKENS

_ACGT_RUN = re.compile(r"[ACGT]+")


def acgt_chunks(seqs: Iterable[str]) -> Iterable[str]:
    """Maximal ACGT runs of each (upper-case) sequence."""
    for s in seqs:
        yield from _ACGT_RUN.findall(s)


def hf_merges(model: dict) -> list[tuple[str, str]]:
    """The merges of a ``tokenizer.json`` BPE model as (left, right) pairs (older
    ``tokenizers`` versions write them as "left right" strings)."""
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]


def train_bpe_hf(seqs: Iterable[str], vocab_size: int):
    """Train with the ``tokenizers`` library's BpeTrainer (reference implementation)."""
    from tokenizers import Tokenizer, models, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=list(ALPHABET), limit_alphabet=len(ALPHABET),
                                  show_progress=False)
    # An iterator of stripped chunks: training from a file would put '\n' in the vocabulary.
    tok.train_from_iterator(acgt_chunks(seqs), trainer)
    model = json.loads(tok.to_str())["model"]
    merges = hf_merges(model)
    vocab = list(ALPHABET)
    seen = set(vocab)
    for a, b in merges:
        if a + b not in seen:
            seen.add(a + b)
            vocab.append(a + b)
    assert len(vocab) + N_SPECIAL <= vocab_size
    return vocab, merges


# ----------------------------------------------------------------------------- own trainer

def _corpus_array(seqs: Iterable[str]):
    """The corpus as one int32 symbol array (A C G T = 0..3) with a doubly linked list.

    Sequences are joined with a newline; the newline and every non-ACGT character become
    barriers with symbol -2, which matches no pair, so nothing is merged across them. One
    extra position ``n`` (symbol -2) is the list's sentinel: ``prv`` of position 0 and
    ``nxt`` of the last position point to it, so the merge loop needs no bounds checks.
    Deleted positions get symbol -1. Positions are int32 (half the memory traffic of
    int64 in the gathers that dominate training), which caps the corpus at 2**31 - 2 bp.
    """
    lut = np.full(256, -2, dtype=np.int8)
    for i, c in enumerate("ACGT"):
        lut[ord(c)] = i
    data = "\n".join(seqs).encode("ascii", "replace")
    n = len(data)
    if n >= 2**31 - 1:
        raise UserError(f"BPE corpus of {n} bp is over the trainer's 2**31 - 2 bp limit; "
                        "set max_corpus_bp")
    tok8 = np.empty(n + 1, dtype=np.int8)
    tok8[:n] = lut[np.frombuffer(data, dtype=np.uint8)]
    tok8[n] = -2
    nxt = np.arange(1, n + 2, dtype=np.int32)
    prv = np.arange(-1, n, dtype=np.int32)
    nxt[n] = n
    prv[0] = n
    prv[n] = n
    return tok8, nxt, prv, n


def _tally(values: np.ndarray, n_sym: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and their counts: a bincount when the array is large relative to the
    symbol range (linear time), a sort otherwise."""
    if values.size * 8 >= n_sym:
        hist = np.bincount(values, minlength=n_sym)
        keys = np.flatnonzero(hist)
        return keys, hist[keys]
    return np.unique(values, return_counts=True)


def _neighbour_index(positions: np.ndarray, neighbours: np.ndarray, t: int) -> tuple:
    """(t, neighbour ids sorted, positions in that order). The sort is stable, so each
    group stays in position order; int16 keys let numpy use its radix sort."""
    keys = neighbours.astype(np.int16) if t < 32_000 else neighbours
    order = np.argsort(keys, kind="stable")
    return t, keys[order], positions[order]


def _group(idx: tuple, key: int) -> np.ndarray:
    _, keys, pos = idx
    # The needles must have the keys' dtype: otherwise numpy converts the whole key array.
    lo, hi = np.searchsorted(keys, np.array([key, key + 1], dtype=keys.dtype))
    return pos[lo:hi]


_EMPTY = np.zeros(0, dtype=np.int64)


class _DictCounts:
    """Pair counts in a dict keyed by ``left * S + right``, with a lazy max-heap over it:
    entries are checked against the dict when popped, so decreases need no heap update.
    Works for any vocabulary size."""

    def __init__(self, S: int, initial: dict[tuple[int, int], int]):
        self.S = S
        self.counts = {a * S + b: c for (a, b), c in initial.items()}
        self.heap = [(-c, k) for k, c in self.counts.items()]
        heapq.heapify(self.heap)

    def best(self):
        """(left, right, count) of the most frequent pair (ties: smallest left, then right)."""
        heap, counts = self.heap, self.counts
        while heap:
            negc, code = heap[0]
            cur = counts.get(code, 0)
            if cur == -negc:
                a, b = divmod(code, self.S)
                return a, b, cur
            heapq.heappop(heap)
            if 0 < cur < -negc:
                heapq.heappush(heap, (-cur, code))
        return None

    def update(self, a, b, c, x_keys, x_removed, x_added, y_keys, y_counts):
        """Merge (a, b) -> c: pairs (x, a) lose ``x_removed``, (x, c) gain ``x_added``
        (both aligned with ``x_keys``), (b, y) lose and (c, y) gain ``y_counts``."""
        S, counts, heap = self.S, self.counts, self.heap
        counts.pop(a * S + b, None)  # every occurrence is merged or destroyed by an overlap
        changes = [(k * S + a, -v) for k, v in zip(x_keys, x_removed)]
        changes += [(k * S + c, v) for k, v in zip(x_keys, x_added) if v]
        changes += [(b * S + k, -v) for k, v in zip(y_keys, y_counts)]
        changes += [(c * S + k, v) for k, v in zip(y_keys, y_counts)]
        for k, d in changes:
            v = counts.get(k, 0) + d
            if v > 0:
                counts[k] = v
                if d > 0:
                    heapq.heappush(heap, (-v, k))
            else:
                counts.pop(k, None)


class _DenseCounts:
    """Pair counts in a dense ``S x S`` int32 matrix, updated with array operations, plus
    each row's maximum (value and column): the best pair is the argmax of the row maxima.
    A row's maximum is recomputed only when its maximal entry decreased. Used when the
    matrix is small (vocabularies up to ~8k: 268 MB at most)."""

    MAX_BYTES = 300 * 2**20

    def __init__(self, S: int, initial: dict[tuple[int, int], int]):
        self.C = np.zeros((S, S), dtype=np.int32)
        for (a, b), v in initial.items():
            self.C[a, b] = v
        self.rowmax = self.C.max(axis=1)
        self.rowarg = self.C.argmax(axis=1)

    def best(self):
        r = int(np.argmax(self.rowmax))  # first maximum: smallest left id
        v = int(self.rowmax[r])
        return (r, int(self.rowarg[r]), v) if v > 0 else None

    def update(self, a, b, c, x_keys, x_removed, x_added, y_keys, y_counts):
        C, rowmax, rowarg = self.C, self.rowmax, self.rowarg
        C[a, b] = 0
        stale = [a] if rowarg[a] == b else []
        # Row c is new: its maximum comes from (c, y) (y_keys ascending: first = smallest).
        if y_keys.size:
            C[b, y_keys] -= y_counts
            C[c, y_keys] += y_counts
            top = int(np.argmax(y_counts))
            rowmax[c], rowarg[c] = y_counts[top], y_keys[top]
            if (y_keys == rowarg[b]).any():
                stale.append(b)
        else:
            rowmax[c], rowarg[c] = 0, 0
        if x_keys.size:
            C[x_keys, a] -= x_removed
            C[x_keys, c] += x_added
            # Gains at column c: the newest (largest) id, so it wins no tie, except in
            # row c itself, whose maximum so far may sit at a smaller column.
            new = C[x_keys, c]
            old_max = rowmax[x_keys]
            up = (new > old_max) | ((new == old_max) & (x_keys == c) & (rowarg[x_keys] > c))
            rowmax[x_keys[up]] = new[up]
            rowarg[x_keys[up]] = c
            stale_x = x_keys[rowarg[x_keys] == a]  # their maximum was (x, a), now smaller
        else:
            stale_x = x_keys
        if stale or stale_x.size:
            rows = np.concatenate([stale_x, np.array(stale, dtype=stale_x.dtype)])
            sub = C[rows]
            arg = sub.argmax(axis=1)
            rowarg[rows] = arg
            rowmax[rows] = sub[np.arange(rows.size), arg]


def train_bpe(seqs: Iterable[str], vocab_size: int, min_count: int = 1,
              dense: bool | None = None):
    """Exact greedy BPE (most frequent adjacent pair first; ties: smallest left id, then
    smallest right id) with incremental pair counts, in numpy.

    State: the corpus as a symbol array with a linked list over live positions, the count
    of every adjacent pair (a dict keyed by ``left * S + right``) and a lazy max-heap over
    it (entries are checked against the dict when popped, so decreases need no heap
    update). A merge of (a, b) into c costs time proportional to its occurrences, never to
    the corpus:

    - finding them: when symbol c is created, its positions are stored grouped by the
      symbol on their right and, separately, on their left (*neighbour indexes*, built at
      "time" t = number of symbols then). Such an index stays complete for neighbours
      older than t: every adjacency created later involves a freshly merged position, whose
      symbol is >= t. So the occurrences of (a, b) are in a's right index if b is older
      than a, else in b's left index (filtered for positions changed since). Pairs of two
      letters are found with one pass over the initial letter-pair codes;
    - for each occurrence at m (right part r = nxt[m], neighbours x = prv[m], y = nxt[r]):
      pairs (x, a), (a, b), (b, y) disappear and (x, c), (c, y) appear; adjacent
      occurrences (y is the next occurrence's m) are recognised from the sorted positions,
      so the pair between them is counted once, as (c, c);
    - runs (a == b, e.g. AAAAA) merge left to right: every other occurrence of each chain.

    A merge that spells an existing token reuses its id (as HF does); the indexes' argument
    then fails for that symbol, so they are dropped and occurrences are found by scanning
    each symbol's position list instead (slower, still exact; never seen on real DNA).
    """
    tok8, nxt, prv, n = _corpus_array(seqs)
    strings = list("ACGT")
    index = {s: i for i, s in enumerate(strings)}
    S = max(vocab_size, 4) + 1  # pair code base: symbol ids stay below vocab_size
    # Letter-pair code of every position (16 = barrier on either side); the positions of
    # a letter pair are extracted when that pair is merged.
    pair8 = np.where((tok8[:-1] >= 0) & (tok8[1:] >= 0), tok8[:-1] * 4 + tok8[1:], 16).astype(np.int8)
    letter_counts = np.bincount(pair8.view(np.uint8), minlength=17)
    initial = {(code16 // 4, code16 % 4): int(letter_counts[code16])
               for code16 in range(16) if letter_counts[code16]}
    if dense is None:
        dense = S * S * 4 <= _DenseCounts.MAX_BYTES
    counts = (_DenseCounts if dense else _DictCounts)(S, initial)
    tok = tok8.astype(np.int32)
    del tok8
    ridx: dict[int, tuple] = {}  # symbol -> neighbour index by right neighbour
    lidx: dict[int, tuple] = {}  # symbol -> neighbour index by left neighbour
    # Positions of each symbol (sorted superset; used only after an id reuse).
    where: list[np.ndarray | None] = [None] * 4
    indexed = True
    merges: list[tuple[str, str]] = []
    target = vocab_size - N_SPECIAL - 1  # symbols to reach (N is in the vocab, not here)

    while len(strings) < target:
        top = counts.best()
        if top is None or top[2] < min_count:
            break
        a, b, _ = top
        # -- occurrences: sorted left positions m and right positions r
        if a < 4 and b < 4:
            # Letter pairs only occur at original adjacencies (i, i + 1): both positions
            # still holding their letter means they are alive and still adjacent.
            cand = np.flatnonzero(pair8 == a * 4 + b).astype(np.int32)
            ok = tok[cand] == a
            ok &= tok[cand + 1] == b
            m = cand[ok]
            r = m + 1
        elif indexed and b < ridx.get(a, (0,))[0]:
            m, r = _via_right(ridx[a], a, b, tok, nxt)
        elif indexed and a < lidx.get(b, (0,))[0]:
            m, r = _via_left(lidx[b], a, b, tok, prv)
        else:
            m, r = _scan(where, a, b, tok, nxt, prv)
        if a == b:
            # Chains: m[j] continues a chain when the previous occurrence ends at it.
            cont = np.zeros(m.size, dtype=bool)
            cont[1:] = r[:-1] == m[1:]
            if cont.any():
                pos = np.arange(m.size, dtype=np.int32)
                keep = (pos - np.maximum.accumulate(np.where(cont, 0, pos))) % 2 == 0
                m, r = m[keep], r[keep]
        lft = prv[m]
        y = nxt[r]
        x_all = tok[lft]
        y_all = tok[y]
        # Adjacent occurrences: y[j] == m[j + 1]; their shared pair (b, a) becomes (c, c).
        adj = np.zeros(m.size, dtype=bool)
        adj[:-1] = y[:-1] == m[1:]
        n_adj = int(adj.sum())
        xv = x_all[x_all >= 0]
        yv = y_all[(y_all >= 0) & ~adj]
        # -- new symbol
        new = strings[a] + strings[b]
        c = index.get(new)
        if c is None:
            c = len(strings)
            strings.append(new)
            index[new] = c
            where.append(m)
            if indexed:
                # Neighbours after the merge: adjacent occurrences see each other (c).
                if n_adj:
                    y_all[adj] = c
                    x_all[1:][adj[:-1]] = c
                ridx[c] = _neighbour_index(m, y_all, len(strings))
                lidx[c] = _neighbour_index(m, x_all, len(strings))
        else:
            where[c] = np.union1d(where[c][tok[where[c]] == c], m).astype(np.int32)
            indexed = False
            ridx.clear()
            lidx.clear()
        merges.append((strings[a], strings[b]))
        # -- rewire: r disappears, m takes symbol c
        nxt[m] = y
        prv[y] = m
        tok[r] = -1
        tok[m] = c
        prv[n] = n
        # -- count changes
        n_sym = len(strings)
        x_keys = x_removed = x_added = y_keys = y_counts = _EMPTY
        if xv.size:
            x_keys, x_removed = _tally(xv, n_sym)
            x_added = x_removed.copy()
            if n_adj:
                # Adjacent occurrences: the left neighbour b became c, so (b, c) -> (c, c).
                x_added[np.searchsorted(x_keys, b)] -= n_adj
                if not (x_keys == c).any():
                    x_keys = np.append(x_keys, c)
                    x_removed = np.append(x_removed, 0)
                    x_added = np.append(x_added, 0)
                x_added[x_keys == c] += n_adj
        if yv.size:
            y_keys, y_counts = _tally(yv, n_sym)
        if not dense:
            x_keys, x_removed, x_added = x_keys.tolist(), x_removed.tolist(), x_added.tolist()
            y_keys, y_counts = y_keys.tolist(), y_counts.tolist()
        counts.update(a, b, c, x_keys, x_removed, x_added, y_keys, y_counts)
    vocab = list(ALPHABET) + strings[4:]
    return vocab, merges


def _via_right(idx, a, b, tok, nxt):
    """Occurrences of (a, b) from a's right index: positions still holding a whose right
    neighbour (which may have changed since) holds b."""
    cand = _group(idx, b)
    cand = cand[tok[cand] == a]
    rr = nxt[cand]
    ok = tok[rr] == b
    return cand[ok], rr[ok]


def _via_left(idx, a, b, tok, prv):
    cand = _group(idx, a)
    cand = cand[tok[cand] == b]
    ll = prv[cand]
    ok = tok[ll] == a
    return ll[ok], cand[ok]


def _scan(where, a, b, tok, nxt, prv):
    """Occurrences of (a, b) from the position list of a (or of b, if a is a letter)."""
    for s_ in (a, b):
        if where[s_] is None:  # letters: built on first use
            where[s_] = np.flatnonzero(tok == s_).astype(np.int32)
    if a >= 4 or b < 4:
        ps = where[a] = where[a][tok[where[a]] == a]
        rr = nxt[ps]
        ok = tok[rr] == b
        return ps[ok], rr[ok]
    ps = where[b] = where[b][tok[where[b]] == b]
    ll = prv[ps]
    ok = tok[ll] == a
    return ll[ok], ps[ok]

