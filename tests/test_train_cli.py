"""`dnatok finetune` / `dnatok pretrain` through the train area's argparse commands."""
from __future__ import annotations

import argparse
import json
import sys

import pytest

from dnatok.errors import UserError
from dnatok.train.cli import add_commands


def run_cli(argv: list[str]) -> int:
    """What dnatok.cli.main does for these commands: parse, run, UserError -> exit 2."""
    parser = argparse.ArgumentParser(prog="dnatok")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"dnatok: error: {err}", file=sys.stderr)
        return 2


def test_finetune_command(tmp_path, capsys):
    from test_train_finetune import make_task

    task = make_task(tmp_path / "task", n_train=64, n_dev=16, n_test=16, length=24)
    out = tmp_path / "run"
    rc = run_cli(["finetune", "--data", str(task), "--model", "cnn", "--tokenizer", "char", "--seed", "1",
                  "--out", str(out), "--epochs", "1", "--lr", "0.005", "--batch-size", "8",
                  "--protocol", "original", "--protocol-set", "pooling=mean",
                  "--settings", '{"progress": false}',
                  "--model-args", '{"embed_dim": 8, "channels": [4, 4], "dense_dim": 8}'])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert "mcc" in m["test"] and m["hyperparameters"]["batch_size"] == 8
    assert m["hyperparameters"]["learning_rate"] == 0.005 and m["epochs_run"] == 1
    assert m["protocol"] == "original[pooling=mean]" and m["hyperparameters"]["pooling"] == "mean"
    assert "test mcc" in capsys.readouterr().out


def test_finetune_command_errors(tmp_path, capsys):
    assert run_cli(["finetune", "--data", str(tmp_path / "none"), "--model", "cnn", "--tokenizer", "char",
                    "--seed", "1", "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "train.csv").write_text("sequence,label\nACGT,zero\n")
    (tmp_path / "t" / "test.csv").write_text("sequence,label\nACGT,0\n")
    assert run_cli(["finetune", "--data", str(tmp_path / "t"), "--model", "cnn", "--tokenizer", "char",
                    "--seed", "1", "--out", str(tmp_path / "o")]) == 2
    assert "train.csv:2" in capsys.readouterr().err
    assert run_cli(["finetune", "--data", str(tmp_path / "t"), "--model", "cnn", "--tokenizer", "char",
                    "--seed", "1", "--out", str(tmp_path / "o"), "--settings", "{bad"]) == 2
    assert not (tmp_path / "o").exists()


def test_pretrain_command(tmp_path):
    from dnatok.tokenization import train_tokenizer
    from test_train_pretrain import _fasta

    tok = train_tokenizer({"kind": "char"}, tmp_path / "tok")
    fa = _fasta(tmp_path / "g.fa", 0)
    settings = tmp_path / "s.json"
    settings.write_text(json.dumps({"steps": 2, "seq_len": 16, "batch_size": 2, "valid_windows": 2,
                                    "progress": False}))
    rc = run_cli(["pretrain", "--model", "caduceus", "--tokenizer", str(tok.path), "--train-fasta", str(fa),
                  "--valid-fasta", str(fa), "--out", str(tmp_path / "pre"), "--settings", str(settings),
                  "--model-args", '{"d_model": 8, "n_layer": 1}'])
    assert rc == 0 and (tmp_path / "pre" / "config.json").is_file()
    assert (tmp_path / "pre" / "train_log.tsv").read_text().splitlines()[1].startswith("2\t")
