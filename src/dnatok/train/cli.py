"""`dnatok finetune` and `dnatok pretrain` (torch is imported inside the handlers)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from dnatok.errors import UserError


def _json_arg(value: str | None, what: str) -> dict:
    """A JSON object given inline (``'{"epochs": 3}'``) or as a path to a .json file."""
    if value is None:
        return {}
    text = value
    if not value.lstrip().startswith("{"):
        path = Path(value)
        if not path.is_file():
            raise UserError(f"{what}: {value!r} is neither a JSON object nor an existing .json file")
        text = path.read_text()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{what}: invalid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{what}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _protocol_overrides(items: list[str] | None) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"--protocol-set expects FIELD=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _finetune(args) -> int:
    from dnatok.train.finetune import finetune

    settings = _json_arg(args.settings, "--settings")
    for flag, key in (("epochs", "epochs"), ("lr", "learning_rate"), ("batch_size", "batch_size"),
                      ("device", "device"), ("threads", "threads"), ("name", "model_name")):
        if getattr(args, flag) is not None:
            settings[key] = getattr(args, flag)
    protocol = {"base": args.protocol, **_protocol_overrides(args.protocol_set)}
    common = dict(protocol=protocol, pretrained=args.pretrained, settings=settings,
                  model_hparams=_json_arg(args.model_args, "--model-args"), checkpoint=args.checkpoint)
    if (args.seed is None) == (args.seeds is None):
        raise UserError("give either --seed (one run into --out) or --seeds (runs into --out-root/seed<N>)")
    if args.seed is not None:
        if not args.out:
            raise UserError("--seed needs --out (the run folder)")
        runs = [(args.out, finetune(args.data, args.model, args.tokenizer, args.out, args.seed, **common))]
    else:
        if not args.out_root:
            raise UserError("--seeds needs --out-root (one seed<N> folder per run)")
        from dnatok.train.pack import finetune_pack, pack_runs

        results = finetune_pack(args.data, args.model, args.tokenizer, args.out_root, args.seeds, args.grid,
                                log=print, manifest=args.manifest, **common)
        folders = [run[2] for run in pack_runs(Path(args.out_root), args.grid, args.seeds, None)]
        runs = list(zip(folders, results))
    for out, m in runs:
        note = " (COLLAPSED)" if m["collapsed"] else ""
        print(f"{m['task']} {m['model']} {m['tokenizer']} seed {m['seed']} [{m['protocol']}]: "
              f"test mcc {m['test']['mcc']:.4f} accuracy {m['test']['accuracy']:.4f}{note} -> {out}")
    return 0


def _pretrain(args) -> int:
    from dnatok.train.pretrain import pretrain

    settings = _json_arg(args.settings, "--settings")
    if args.threads is not None:
        settings["threads"] = args.threads
    s = pretrain(args.model, args.tokenizer, args.train_fasta, args.valid_fasta, args.out,
                 settings=settings,
                 model_hparams=_json_arg(args.model_args, "--model-args"))
    state = "done" if s["finished"] else "paused (rerun to resume)"
    print(f"pretrain {args.model}: step {s['step']}/{s['max_steps']} {state} -> {args.out}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune one model on one task folder with one seed",
                       description="Fine-tune a classifier on DIR/{train,dev,test}.csv and write metrics.json, "
                                   "predictions.tsv and provenance.json to --out.")
    p.add_argument("--data", required=True, help="task folder with train.csv, [dev.csv,] test.csv [task.json]")
    p.add_argument("--model", required=True,
                   help="architecture: cnn, mamba, caduceus, bert, hyena; with --checkpoint: dnabert2, ntv2, "
                        "dnabert, gpt_neo, hyena, caduceus_hub")
    p.add_argument("--name", help="the model's name in metrics.json (the config's key); default: the architecture")
    p.add_argument("--tokenizer", required=True,
                   help="tokenizer kind (char, kmer6), a saved tokenizer folder (needed for BPE), or own "
                        "(a released checkpoint's own tokenizer)")
    p.add_argument("--seed", type=int, help="one run's seed (with --out)")
    p.add_argument("--out", help="the run's output folder (written atomically)")
    p.add_argument("--seeds", type=int, nargs="+",
                   help="several seeds of the same settings in one process (with --out-root)")
    p.add_argument("--out-root", help="with --seeds: each run goes to OUT_ROOT/seed<N> (OUT_ROOT/<hp>/seed<N> with "
                                      "--grid), atomically; complete folders of the same run are kept and skipped")
    p.add_argument("--grid", nargs="+", metavar="HP",
                   help="a pack: these grid points (lr1e-4_bs128_rc1 ...) x --seeds in one process; "
                        "their values replace the grid keys of --settings")
    p.add_argument("--manifest", help="with --seeds: write the pack's run list (TSV) here when every run is done")
    p.add_argument("--protocol", default="corrected", choices=("corrected", "original"))
    p.add_argument("--protocol-set", action="append", metavar="FIELD=VALUE",
                   help="change one protocol field, e.g. pooling=mean (repeatable; measures one quirk)")
    p.add_argument("--pretrained", help="pre-trained model folder (from dnatok pretrain)")
    p.add_argument("--checkpoint", help="a released checkpoint folder (DNABERT-2, NT-v2, DNABERT, GPT-Neo, "
                                        "HyenaDNA, Caduceus) instead of --pretrained; use --tokenizer own")
    p.add_argument("--settings", help="JSON object or .json file of fine-tuning settings")
    p.add_argument("--model-args", help="JSON object or .json file of model hyperparameters")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda when available)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.set_defaults(func=_finetune)

    q = sub.add_parser("pretrain", help="pre-train a language model on FASTA windows (resumable)",
                       description="MLM for bidirectional models, next-token prediction for Mamba; resumes "
                                   "from OUT/checkpoints automatically. Use torchrun for several GPUs.")
    q.add_argument("--model", required=True, help="architecture: mamba, caduceus, bert")
    q.add_argument("--tokenizer", required=True, help="saved tokenizer folder")
    q.add_argument("--train-fasta", required=True)
    q.add_argument("--valid-fasta", required=True)
    q.add_argument("--out", required=True)
    q.add_argument("--settings", help="JSON object or .json file of pre-training settings")
    q.add_argument("--threads", type=int, help="torch CPU threads (a run-time choice: not part of the "
                                                "checkpoint identity)")
    q.add_argument("--model-args", help="JSON object or .json file of model hyperparameters")
    q.set_defaults(func=_pretrain)
