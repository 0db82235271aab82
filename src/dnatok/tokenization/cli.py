"""`dnatok tokenizer train|stats` subcommands."""
from __future__ import annotations

import json
import time
from pathlib import Path

from dnatok.errors import UserError
from dnatok.tokenization.learned_spec import LEARNED_KINDS


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("tokenizer", help="train tokenizers and measure how they cut tasks")
    sub = p.add_subparsers(dest="tokenizer_command", required=True)

    t = sub.add_parser("train", help="build a tokenizer from a JSON spec (BPE, vq, hrq: from a corpus)")
    t.add_argument("--spec", required=True,
                   help='JSON object, e.g. \'{"kind": "bpe", "vocab_size": 4096}\' or a path to a JSON file')
    t.add_argument("--out", required=True, type=Path,
                   help="output directory (HF fast tokenizer; vq/hrq: weights + statistics)")
    t.add_argument("--corpus", nargs="+", type=Path, default=None,
                   help="BPE/vq/hrq corpus: FASTA (.gz/bgzip ok) of the pretraining train split, or "
                        "a text file with one sequence per line; read in the given order")
    t.set_defaults(func=_train)

    s = sub.add_parser("stats", help="tokens per sequence, bp per token, vocabulary use, "
                                     "[UNK] share and token lengths per tokenizer x task")
    s.add_argument("--tokenizer", required=True, action="append", type=Path,
                   help="tokenizer directory (repeatable)")
    s.add_argument("--name", action="append", default=None,
                   help="name of each --tokenizer in the table, in the same order "
                        "(default: the directory's name)")
    s.add_argument("--task-dir", required=True, action="append", type=Path,
                   help="task directory with train/dev/test.csv (repeatable); its basename is the task name")
    s.add_argument("--out", required=True, type=Path, help="output TSV")
    s.add_argument("--plot", type=Path, default=None, help="token length distribution plot (PNG)")
    s.set_defaults(func=_stats)


def _parse_spec(text: str) -> dict:
    path = Path(text)
    if not text.lstrip().startswith("{") and path.is_file():
        text = path.read_text()
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"--spec is not valid JSON: {err}") from None
    return spec


def _train(args) -> int:
    from dnatok.io import provenance, write_json
    from dnatok.tokenization.core import train_tokenizer
    from dnatok.tokenization.corpus import read_corpus
    from dnatok.tokenization.vocab import canonical_spec

    spec = canonical_spec(_parse_spec(args.spec))
    learned = spec["kind"] in ("bpe", *LEARNED_KINDS)  # kinds trained from a corpus
    if learned and not args.corpus:
        raise UserError(f"a {spec['kind']} tokenizer needs --corpus")
    corpus = read_corpus(args.corpus) if (args.corpus and learned) else None
    t0 = time.perf_counter()
    tok = train_tokenizer(spec, args.out, corpus)
    seconds = time.perf_counter() - t0
    # Provenance sits beside the tokenizer files (which stay byte-identical across runs).
    write_json(args.out / "provenance.json",
               provenance(spec=spec, corpus=[str(p) for p in args.corpus or []],
                          corpus_summary=tok.meta.get("corpus"), wall_s=round(seconds, 3)))
    print(f"{args.out}: {tok.kind} tokenizer, vocab_size={tok.vocab_size} ({seconds:.1f} s)")
    return 0


def _stats(args) -> int:
    from dnatok.tokenization.core import load_tokenizer
    from dnatok.tokenization.stats import plot_length_distribution, stats_table, write_tsv

    names = args.name or []
    if names and len(names) != len(args.tokenizer):
        raise UserError(f"{len(names)} --name for {len(args.tokenizer)} --tokenizer")
    tokenizers = [(names[i] if names else Path(d).name, load_tokenizer(d))
                  for i, d in enumerate(args.tokenizer)]
    rows = stats_table(tokenizers, args.task_dir)
    write_tsv(rows, args.out)
    if args.plot:
        plot_length_distribution(rows, args.plot)
    print(f"{args.out}: {len(rows)} rows")
    return 0
