"""BPE training: dnatok's trainer vs SentencePiece (and optionally HF tokenizers), side by side.

Usage (from the repository root, ~1-2 minutes on 2 cores; --hf adds ~30-50 s)::

    PYTHONPATH=src .venv/bin/python bench/tokenizers/bench_bpe.py [--repeats 3] [--hf] \
        [--out bench/tokenizers/bpe_results.json]

What is timed, on the same 20 Mbp corpus (see common.py), in one process, alternating the
trainers so that they share the machine's conditions:
- dnatok: ``train_tokenizer({"kind": "bpe", "vocab_size": V}, dir, corpus)``, end to end:
  corpus fingerprint, training, writing the HF tokenizer directory and loading it back;
- SentencePiece: ``SentencePieceTrainer.train(model_type="bpe", vocab_size=V, ...)`` on an
  iterator of the same sequences, model written to memory; its defaults otherwise (so its
  pieces are capped at 16 bp, which dnatok's are not);
- HF tokenizers (``--hf``, first repeat only): dnatok's spec with ``"trainer": "hf"``,
  same pipeline as dnatok.
Wall-clock and process CPU seconds are recorded for every run; the ratio uses medians.

Quality on held-out real sequence (nothing of it is in the training corpus): bp per token
on GUE human sequences (prom_300_tata test, tf/0 test, mouse/0 test) and the human
mitochondrial genome, each tokenizer with its own encoder; and BPE encoding throughput
(HF fast tokenizer, all cores) on 5 Mbp of 1 kbp sequences.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import GUE, REPO, build_corpus  # noqa: E402

from dnatok.tokenization import train_tokenizer  # noqa: E402
from dnatok.tokenization.corpus import read_sequences  # noqa: E402


def held_out() -> dict[str, list[str]]:
    sets = {}
    for task in ("prom/prom_300_tata", "tf/0", "mouse/0"):
        with open(GUE / task / "test.csv", newline="") as fh:
            sets[f"gue_{task.replace('/', '_')}_test"] = [r["sequence"] for r in csv.DictReader(fh)]
    mt = next(read_sequences(REPO.parent / "shared" / "data" / "genome" / "MT-human.fa"))
    sets["MT_1kbp"] = [mt[i:i + 1000] for i in range(0, len(mt), 1000)]
    return sets


def timed(fn):
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, round(time.perf_counter() - t, 3), round(time.process_time() - c, 3)


def train_sp(corpus, vocab_size):
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=model, model_type="bpe",
        vocab_size=vocab_size, character_coverage=1.0, add_dummy_prefix=False,
        max_sentence_length=1_000_000, num_threads=os.cpu_count(), bos_id=-1, eos_id=-1,
        minloglevel=2)
    return spm.SentencePieceProcessor(model_proto=model.getvalue())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bp", type=int, default=20_000_000)
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--hf", action="store_true", help="also time the HF tokenizers trainer")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("bpe_results.json"))
    args = ap.parse_args()

    load_before = os.getloadavg()
    corpus, build_s, _ = timed(lambda: build_corpus(args.bp))
    tmp = Path(tempfile.mkdtemp())
    spec = {"kind": "bpe", "vocab_size": args.vocab_size}
    runs = {"dnatok": [], "sentencepiece": []} | ({"hf": []} if args.hf else {})
    tokenizers = {}
    import transformers  # noqa: F401  (imported once up front, not inside a timed run)

    for rep in range(args.repeats):
        names = [n for n in runs if n != "hf" or rep == 0]  # HF's trainer: once (it is slow)
        order = names if rep % 2 == 0 else list(reversed(names))
        for name in order:
            if name == "sentencepiece":
                tok, wall, cpu = timed(lambda: train_sp(corpus, args.vocab_size))
            else:
                s = spec | ({"trainer": "hf"} if name == "hf" else {})
                tok, wall, cpu = timed(lambda: train_tokenizer(s, tmp / f"{name}{rep}", corpus))
            runs[name].append({"wall_s": wall, "cpu_s": cpu})
            tokenizers[name] = tok
            print(f"repeat {rep}: {name:14s} wall {wall:6.2f} s  cpu {cpu:6.2f} s", flush=True)

    summary = {name: {"median_wall_s": statistics.median(r["wall_s"] for r in rs),
                      "median_cpu_s": statistics.median(r["cpu_s"] for r in rs),
                      "min_wall_s": min(r["wall_s"] for r in rs)} for name, rs in runs.items()}
    sp, own = summary["sentencepiece"], summary["dnatok"]
    ratio = {"wall_sp_over_dnatok": round(sp["median_wall_s"] / own["median_wall_s"], 3),
             "cpu_sp_over_dnatok": round(sp["median_cpu_s"] / own["median_cpu_s"], 3)}

    # -- quality: bp/token on held-out sequence, each tokenizer with its own encoder
    quality = {}
    for set_name, seqs in held_out().items():
        bp = sum(len(s) for s in seqs)
        row = {"bp": bp}
        for name, tok in tokenizers.items():
            if name == "sentencepiece":
                n = sum(len(x) for x in tok.encode([s.upper() for s in seqs]))
            else:
                n = int(tok._encode_flat(seqs)[0].size)
            row[name] = round(bp / n, 4)
        quality[set_name] = row
    own_vocab = set(tokenizers["dnatok"].id_to_token[5:])
    sp_tok = tokenizers["sentencepiece"]
    sp_vocab = {sp_tok.id_to_piece(i) for i in range(sp_tok.get_piece_size())}
    vocab_compare = {"dnatok_tokens": len(own_vocab), "sentencepiece_pieces": len(sp_vocab),
                     "shared": len(own_vocab & sp_vocab),
                     "dnatok_longest_bp": max(map(len, own_vocab)),
                     "dnatok_tokens_over_16bp": sum(len(t) > 16 for t in own_vocab)}
    if "hf" in tokenizers:
        hf_vocab = set(tokenizers["hf"].id_to_token[5:])
        vocab_compare["shared_with_hf_trainer"] = len(own_vocab & hf_vocab)

    # -- encoding throughput of the dnatok BPE tokenizer (HF fast tokenizer, all cores)
    enc_seqs = corpus[: 5_000_000 // len(corpus[0])]
    enc_bp = sum(map(len, enc_seqs))
    tok = tokenizers["dnatok"]
    enc = []
    for _ in range(3):
        _, wall, cpu = timed(lambda: tok.encode_batch(enc_seqs, max_len=2048))
        enc.append({"wall_s": wall, "cpu_s": cpu})
    sp_enc = []
    for _ in range(3):
        _, wall, cpu = timed(lambda: sp_tok.encode(enc_seqs, num_threads=os.cpu_count()))
        sp_enc.append({"wall_s": wall, "cpu_s": cpu})
    encoding = {
        "bp": enc_bp,
        "dnatok_mbp_per_s_wall_median": round(enc_bp / 1e6 / statistics.median(r["wall_s"] for r in enc), 2),
        "dnatok_mbp_per_s_wall_best": round(enc_bp / 1e6 / min(r["wall_s"] for r in enc), 2),
        "dnatok_mbp_per_cpu_s": round(enc_bp / 1e6 / statistics.median(r["cpu_s"] for r in enc), 2),
        "sentencepiece_mbp_per_s_wall_median": round(enc_bp / 1e6 / statistics.median(r["wall_s"] for r in sp_enc), 2),
        "sentencepiece_mbp_per_cpu_s": round(enc_bp / 1e6 / statistics.median(r["cpu_s"] for r in sp_enc), 2),
    }

    result = {"corpus": {"bp": sum(map(len, corpus)), "sequences": len(corpus), "build_s": build_s},
              "vocab_size": args.vocab_size, "runs": runs, "summary": summary, "ratio": ratio,
              "quality_bp_per_token": quality, "vocab_compare": vocab_compare, "encoding": encoding,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "loadavg_before": load_before, "loadavg_after": os.getloadavg()}}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("summary", "ratio", "quality_bp_per_token",
                                             "vocab_compare", "encoding", "machine")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
