"""The `original` protocol's held-out validation per benchmark: Hugging Face `datasets`'
`Dataset.train_test_split(test_size=0.1, seed=seed)` for Nucleotide Transformer tasks
(re-implemented in numpy, compared here with datasets itself) and torch's `random_split`
for GUE and Genomic Benchmarks; `corrected` keeps the stratified split."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dnatok.errors import UserError
from dnatok.train.protocol import CORRECTED, ORIGINAL, get_protocol
from dnatok.train.splits import holdout_split, load_task, make_validation, validation_split_method

SIZES = [11, 101, 1000, 29_999]
SEEDS = [0, 1, 2, 7, 42, 2222]


def datasets_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices as datasets itself draws them, sorted."""
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"row": list(range(n))})
    parts = ds.train_test_split(test_size=fraction, seed=seed)
    return np.sort(parts["train"]["row"]), np.sort(parts["test"]["row"])


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_rows_equal_datasets_train_test_split(n, seed):
    ref_train, ref_val = datasets_split(n, 0.1, seed)
    labels = np.arange(n) % 2
    tr, va = holdout_split(labels, 0.1, seed, "datasets_train_test_split")
    np.testing.assert_array_equal(va, ref_val)
    np.testing.assert_array_equal(tr, ref_train)


@pytest.mark.parametrize(("n", "fraction"), [(100, 0.07), (50, 0.14), (30, 0.1), (2, 0.5), (7, 0.3)])
def test_n_test_is_the_ceiling_of_the_float_product(n, fraction):
    # 0.07 * 100 == 7.000000000000001 in floating point, so datasets holds out 8 rows
    ref_train, ref_val = datasets_split(n, fraction, 5)
    tr, va = holdout_split(np.zeros(n), fraction, 5, "datasets_train_test_split")
    np.testing.assert_array_equal(va, ref_val)
    np.testing.assert_array_equal(tr, ref_train)


def test_datasets_style_split_without_datasets():
    # the rule itself, independent of the datasets package
    n, seed = 101, 3
    tr, va = holdout_split(np.zeros(n), 0.1, seed, "datasets_train_test_split")
    assert va.size == 11 and tr.size == 90          # ceil(10.1) held out
    np.testing.assert_array_equal(va, np.sort(np.random.default_rng(seed).permutation(n)[:11]))
    assert np.intersect1d(tr, va).size == 0 and np.union1d(tr, va).size == n
    # differs from torch's split for the same seed (torch floors 10.1 to 10, then adds one)
    _, va_torch = holdout_split(np.zeros(n), 0.1, seed, "torch_random_split")
    assert not np.array_equal(va, va_torch)
    with pytest.raises(UserError):
        holdout_split(np.zeros(n), 0.1, seed, "nope")


def test_protocol_field_resolves_per_benchmark():
    assert ORIGINAL.validation_split == "by_benchmark" and CORRECTED.validation_split == "stratified"
    assert ORIGINAL.validation_split_for("nt") == "datasets_train_test_split"
    for bench in ("gue", "gb", None):
        assert ORIGINAL.validation_split_for(bench) == "torch_random_split"
        assert CORRECTED.validation_split_for(bench) == "stratified"
    assert CORRECTED.validation_split_for("nt") == "stratified"
    p = get_protocol("original", validation_split="stratified")
    assert p.validation_split_for("nt") == "stratified" and p.name == "original[validation_split=stratified]"
    assert validation_split_method("datasets_train_test_split", "gue") == "datasets_train_test_split"
    with pytest.raises(UserError):
        get_protocol("original", validation_split="random")


def _task(path, benchmark, n=101, dev=True, length=8):
    path.mkdir(parents=True)
    rows = [f"{'ACGT'[i % 4] * length},{i % 2}" for i in range(n)]
    (path / "train.csv").write_text("sequence,label\n" + "\n".join(rows) + "\n")
    for split in ("test", "dev") if dev else ("test",):
        (path / f"{split}.csv").write_text("sequence,label\nACGTACGT,0\nTTTTAAAA,1\n")
    (path / "task.json").write_text(json.dumps({"name": path.name, "benchmark": benchmark, "num_classes": 2,
                                                "max_len": length, "study_len": length + 8,
                                                "category": None}))
    return load_task(path)


def _ids_to_rows(split):
    return np.sort([int(r.split("_")[1]) for r in split.ids])


@pytest.mark.parametrize("seed", [1, 2, 5])
def test_original_protocol_nt_task_uses_datasets_split(tmp_path, seed):
    nt = _task(tmp_path / "nt_task", "nt")
    tr, va, how = make_validation(nt, seed, ORIGINAL.validation_from_train, ORIGINAL.validation_split_for("nt"))
    assert how == f"random (datasets train_test_split) 0.1 of train.csv, split seed {seed}"
    assert len(va) == 11 and len(tr) == 90 and set(tr.ids).isdisjoint(va.ids)
    ref_train, ref_val = datasets_split(101, 0.1, seed)
    np.testing.assert_array_equal(_ids_to_rows(va), ref_val)
    np.testing.assert_array_equal(_ids_to_rows(tr), ref_train)
    # "by_benchmark" given directly is resolved with the task's own benchmark
    assert make_validation(nt, seed, True, "by_benchmark")[2] == how


@pytest.mark.parametrize("seed", [1, 2, 5])
def test_original_protocol_gue_task_uses_torch_split(tmp_path, seed):
    import torch

    gue = _task(tmp_path / "gue_task", "gue")
    tr, va, how = make_validation(gue, seed, ORIGINAL.validation_from_train, ORIGINAL.validation_split_for("gue"))
    assert how == f"random (torch random_split) 0.1 of train.csv, split seed {seed}"
    ref, _ = torch.utils.data.random_split(range(101), [0.1, 0.9], generator=torch.Generator().manual_seed(seed))
    np.testing.assert_array_equal(_ids_to_rows(va), np.sort(ref.indices))
    assert len(va) + len(tr) == 101
    assert make_validation(gue, seed, True, "by_benchmark")[2] == how
    # the corrected protocol takes GUE's dev.csv, and a stratified split without one
    assert make_validation(gue, seed, CORRECTED.validation_from_train, CORRECTED.validation_split_for("gue"))[2] \
        == "dev.csv"
    nodev = _task(tmp_path / "nodev", "nt", dev=False)
    _, va, how = make_validation(nodev, seed, CORRECTED.validation_from_train, CORRECTED.validation_split_for("nt"))
    assert how.startswith("stratified") and len(va) == 10


def test_finetune_records_the_nt_split_in_metrics(tmp_path):
    """The fine-tuning loop itself: an NT task under `original` is split the datasets way
    and metrics.json says so."""
    from dnatok.train.finetune import finetune

    path = tmp_path / "nt_task"
    _task(path, "nt", n=60, length=32)
    m = finetune(path, "cnn", "char", tmp_path / "run", seed=3, protocol="original",
                 settings={"epochs": 1, "batch_size": 16, "progress": False},
                 model_hparams={"embed_dim": 8, "channels": [4, 4], "dense_dim": 16})
    assert m["validation_source"] == "random (datasets train_test_split) 0.1 of train.csv, split seed 3"
    assert m["n_validation"] == 6 and m["protocol_fields"]["validation_split"] == "by_benchmark"
