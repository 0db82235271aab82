"""`dnatok checkpoint fetch|check`: a released checkpoint downloaded (or copied from a local
mirror) with checksums, then loaded once, strictly, with its tokenizer."""
from __future__ import annotations

import json


def _source(args) -> dict:
    from dnatok.released import CHECKPOINT_PATTERNS

    return {"kind": "hf", "repo_id": args.repo, "repo_type": "model", "revision": args.revision,
            "allow_patterns": CHECKPOINT_PATTERNS}


def _fetch(args) -> int:
    from dnatok.data.download import download
    from dnatok.released import check_checkpoint

    dest = download(_source(args), args.dest, mirror=args.mirror)
    report = check_checkpoint(dest, args.arch)
    print(json.dumps({k: v for k, v in report.items() if k not in ("dropped", "initialised", "tied")}))
    return 0


def _check(args) -> int:
    from dnatok.released import check_checkpoint

    print(json.dumps(check_checkpoint(args.folder, args.arch), indent=2))
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("checkpoint", help="fetch or check a released checkpoint (no remote code)")
    s = p.add_subparsers(dest="action", required=True)
    f = s.add_parser("fetch", help="download a hub checkpoint (or copy a mirror) and load it once, strictly")
    f.add_argument("--repo", required=True, help="hub id, e.g. zhihan1996/DNABERT-2-117M")
    f.add_argument("--revision", help="commit (pin it: remote repositories change)")
    f.add_argument("--dest", required=True, help="checkpoint folder to create (a .sha256 manifest goes beside it)")
    f.add_argument("--mirror", help="a local copy of the repository used instead of the network")
    f.add_argument("--arch", help="the architecture the checkpoint must be (dnabert2, ntv2, …)")
    f.set_defaults(func=_fetch)
    c = s.add_parser("check", help="load a checkpoint folder strictly and print what was loaded")
    c.add_argument("folder")
    c.add_argument("--arch")
    c.set_defaults(func=_check)
