"""``dnatok bend embed | probe | score-variants``: the evaluation half of the BEND layer.

:func:`add_commands` takes the ``bend`` parser's subparsers (see :mod:`dnatok.bend.cli`).
"""
from __future__ import annotations


def add_commands(sub) -> None:
    p = sub.add_parser("embed", help="per-base embeddings of a BEND task (cached)",
                       description="Embeds every record of a BEND task with a model (ours or released) "
                                   "or 'onehot', upsampled to one vector per base, into --out.")
    p.add_argument("--model", required=True, help="model folder (dnatok pretrain or released), or 'onehot'")
    p.add_argument("--tokenizer", help="tokenizer folder (required for models trained here)")
    p.add_argument("--task", required=True, help="BEND task folder")
    p.add_argument("--genome", required=True, help="reference FASTA")
    p.add_argument("--out", required=True, help="embedding folder (written atomically; reused if up to date)")
    p.add_argument("--chunk-bp", type=int, help="embed long sequences in independent chunks of this many "
                                                "bases (default: the model's input limit, if any)")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--splits", default="train,valid,test", help="comma list of splits")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_embed)

    p = sub.add_parser("probe", help="train BEND's CNN probe (or its supervised ResNet) on cached embeddings",
                       description="Trains BEND's two-layer CNN probe (--arch cnn) or its supervised dilated "
                                   "ResNet (--arch resnet), keeps the best validation epoch and writes test "
                                   "metrics, predictions, losses and provenance to --out.")
    p.add_argument("--task", required=True, help="BEND task folder")
    p.add_argument("--embeddings", required=True, help="folder written by 'dnatok bend embed'")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, help="default: 64 per-base, 256 multi-label (BEND)")
    p.add_argument("--arch", choices=("cnn", "resnet"), default="cnn",
                   help="cnn: BEND's 2-layer probe; resnet: BEND's resnet-supervised (dilated, kernel 9)")
    p.add_argument("--hidden", type=int, help="width (default: 64 cnn, 256 resnet, BEND's)")
    p.add_argument("--layers", type=int, help="resnet blocks (default 30, BEND's); the cnn has 2")
    p.add_argument("--class-weights", choices=("none", "inverse-frequency"), default="none",
                   help="per-base cross-entropy class weights (inverse-frequency: n / (k n_c) from train)")
    p.add_argument("--rc-aug", action="store_true",
                   help="reverse-complement half the one-hot training sequences, swapping X+/X- labels")
    p.add_argument("--patience", type=int, help="stop after this many epochs without a better validation metric")
    p.add_argument("--crop-bp", type=int, help="train on random windows of this many bases")
    p.add_argument("--model-name", help="name of the run's model in the tables (default: embedding model folder)")
    p.add_argument("--tokenizer-name", help="name of the run's tokenizer in the tables")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_probe)

    p = sub.add_parser("score-variants", help="zero-shot SNV scores: cosine distance of ref/alt embeddings",
                       description="Scores each variant by the cosine distance between the reference and "
                                   "alternative windows' embeddings at the variant base; writes a TSV and "
                                   "a summary JSON with the AUROC.")
    p.add_argument("--model", required=True, help="model folder (dnatok pretrain or released)")
    p.add_argument("--tokenizer", help="tokenizer folder (required for models trained here)")
    p.add_argument("--variants", required=True, help="variants TSV (dnatok bend variants)")
    p.add_argument("--genome", required=True, help="reference FASTA")
    p.add_argument("--out", required=True, help="output TSV (summary: same name, .json)")
    p.add_argument("--context-bp", type=int, default=256)
    p.add_argument("--causal", choices=("yes", "no", "auto"), default="auto",
                   help="left context only (auto: from the model's objective)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_score)

    p = sub.add_parser("variant-table", help="one row per scored model: AUROC of the zero-shot variant scores")
    p.add_argument("--scores", required=True, nargs="+", help="scores TSVs of 'dnatok bend score-variants'")
    p.add_argument("--names", required=True, nargs="+", help="model/tokenizer of each --scores, in order")
    p.add_argument("--out", required=True, help="output TSV")
    p.set_defaults(func=_variant_table)


def _embed(args) -> int:
    from dnatok.bend.embeddings import embed_task

    splits = tuple(s for s in args.splits.split(",") if s)
    meta = embed_task(args.model, args.task, args.genome, args.out, tokenizer=args.tokenizer,
                      chunk_bp=args.chunk_bp, batch_size=args.batch_size, device=args.device,
                      splits=splits, dtype=args.dtype)
    bases = sum(c["bases"] for c in meta["counts"].values())
    print(f"{'reused' if meta['reused'] else 'embedded'} {bases} bases (dim {meta['dim']}, "
          f"upsample {meta['upsample']}, chunk {meta['chunk_bp']}) -> {args.out}")
    return 0


def _probe(args) -> int:
    from dnatok.bend.probe import train_probe

    m = train_probe(args.task, args.embeddings, args.out, seed=args.seed, epochs=args.epochs,
                    learning_rate=args.learning_rate, weight_decay=args.weight_decay,
                    batch_size=args.batch_size, hidden=args.hidden, patience=args.patience,
                    device=args.device, crop_bp=args.crop_bp, model_name=args.model_name,
                    tokenizer_name=args.tokenizer_name, arch=args.arch, layers=args.layers,
                    class_weights=args.class_weights, rc_aug=args.rc_aug)
    sel = m["selection_metric"]
    print(f"{m['task']}: best epoch {m['best_epoch']}/{m['epochs_run']}, valid {sel} {m['valid_metric']}, "
          f"test {sel} {m['test'][sel]} -> {args.out}")
    return 0


def _score(args) -> int:
    from dnatok.bend.variant_scoring import score_variants

    causal = {"yes": True, "no": False, "auto": None}[args.causal]
    s = score_variants(args.model, args.variants, args.genome, args.out, tokenizer=args.tokenizer,
                       context_bp=args.context_bp, causal=causal, device=args.device,
                       batch_size=args.batch_size)
    print(f"{s['n']} variants ({s['n_pos']} positive), AUROC {s['auroc']} ({s['context_rule']}) -> {args.out}")
    return 0


def _variant_table(args) -> int:
    from dnatok.bend.variant_scoring import variant_table

    rows = variant_table(args.scores, args.names, args.out)
    print(f"{len(rows)} scored models -> {args.out}")
    return 0
