"""Protocols as data, task-folder reading and validation splits."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dnatok.errors import DataError, UserError
from dnatok.train.protocol import CORRECTED, ORIGINAL, STUDY_TRAINING_SEED, get_protocol
from dnatok.train.splits import holdout_split, load_task, make_validation, read_split_csv


def test_original_and_corrected_differ_in_every_quirk():
    # the recipe and the DNABERT input bug concern the attention models' original (below)
    skip = {"name", "recipe", "unspaced_kmer_benchmarks"}
    differing = {f.name for f in dataclasses.fields(ORIGINAL)
                 if getattr(ORIGINAL, f.name) != getattr(CORRECTED, f.name)}
    assert differing - skip == {f.name for f in dataclasses.fields(ORIGINAL)} - skip
    assert ORIGINAL.training_seed(1) == ORIGINAL.training_seed(5) == STUDY_TRAINING_SEED
    assert CORRECTED.training_seed(5) == 5 and CORRECTED.split_seed(5) == 5 == ORIGINAL.split_seed(5)
    assert ORIGINAL.selection_metric_for("gb") == "accuracy"
    assert ORIGINAL.selection_metric_for("gue") == ORIGINAL.selection_metric_for("nt") == "mcc"
    assert (ORIGINAL.length_rule, ORIGINAL.padding_side, ORIGINAL.pooling) == ("study", "left", "mean_all")
    assert (CORRECTED.length_rule, CORRECTED.padding_side, CORRECTED.pooling) == ("true", "right", "mean")


def test_toggle_one_quirk():
    p = get_protocol("original", pooling="mean")
    assert p.pooling == "mean" and p.padding_side == "left" and p.name == "original[pooling=mean]"
    assert get_protocol({"base": "corrected", "padding_side": "left"}).padding_side == "left"
    assert get_protocol("corrected") is CORRECTED
    with pytest.raises(UserError):
        get_protocol("nope")
    with pytest.raises(UserError):
        get_protocol("corrected", not_a_field=1)
    with pytest.raises(UserError):
        get_protocol("corrected", pooling="max")


def _write(path, rows, header="sequence,label"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n")


def test_read_split_errors_name_the_line(tmp_path):
    f = tmp_path / "train.csv"
    _write(f, ["ACGT,0", "ACGA,x"])
    with pytest.raises(DataError) as err:
        read_split_csv(f, "train")
    assert err.value.line == 3 and str(f) in str(err.value)
    _write(f, ["ACGT,0"], header="seq,lab")
    with pytest.raises(DataError) as err:
        read_split_csv(f, "train")
    assert err.value.line == 1
    _write(f, ["acgt,1,r1", "ACGG,0,r2"], header="sequence,label,id")
    s = read_split_csv(f, "train")
    assert s.sequences == ["ACGT", "ACGG"] and s.ids == ["r1", "r2"] and s.labels.tolist() == [1, 0]


def test_load_task_recognises_registry_task(gue_dir):
    data = load_task(gue_dir / "prom" / "prom_core_tata")
    assert data.info["name"] == "prom_core_tata" and data.info["study_len"] == 300
    assert data.info["max_len"] == data.info["observed_max_len"] == 70
    assert data.num_classes == 2 and data.dev is not None
    assert len(data.train) == 4904


def test_holdout_stratified_and_study_split():
    labels = np.array([0] * 900 + [1] * 100)       # class-sorted, unbalanced
    tr, va = holdout_split(labels, 0.1, seed=3, method="stratified")
    assert va.size == 100 and np.isin(va, tr).sum() == 0 and tr.size + va.size == 1000
    assert (labels[va] == 1).sum() == 10            # proportional
    tr2, va2 = holdout_split(labels, 0.1, seed=4, method="stratified")
    assert not np.array_equal(va, va2)              # different seed, different split
    np.testing.assert_array_equal(va, holdout_split(labels, 0.1, seed=3, method="stratified")[1])
    # the study's split is torch's random_split, validation part first
    import torch

    ref, _ = torch.utils.data.random_split(range(1000), [0.1, 0.9], generator=torch.Generator().manual_seed(7))
    _, va_study = holdout_split(labels, 0.1, seed=7, method="torch_random_split")
    np.testing.assert_array_equal(va_study, np.sort(ref.indices))


def test_make_validation_rules(tmp_path):
    _write(tmp_path / "train.csv", [f"{'ACGT'[i % 4] * 8},{i % 2}" for i in range(50)])
    _write(tmp_path / "dev.csv", ["ACGTACGT,0", "TTTTAAAA,1"])
    _write(tmp_path / "test.csv", ["ACGTACGT,0", "TTTTAAAA,1"])
    data = load_task(tmp_path)
    tr, va, how = make_validation(data, 1, from_train=False, method="stratified")
    assert len(va) == 2 and how == "dev.csv" and len(tr) == 50
    tr, va, how = make_validation(data, 1, from_train=True, method="torch_random_split")
    assert len(va) == 5 and len(tr) == 45 and "random" in how
    assert set(tr.ids).isdisjoint(va.ids)


def test_original_means_the_trainer_recipe_for_the_attention_models():
    from dnatok.train.protocol import ATTENTION_ARCHS, ORIGINAL_ATTENTION, base_protocol

    for arch in ATTENTION_ARCHS:
        assert get_protocol("original", arch) == ORIGINAL_ATTENTION
        assert get_protocol("corrected", arch) == CORRECTED
    for arch in ("mamba", "caduceus", "hyena", "caduceus_hub", "cnn", None):
        assert base_protocol("original", arch) == ORIGINAL
    a = ORIGINAL_ATTENTION
    assert a.name == "original" and a.recipe == "hf_trainer" and a.selection_metric == "loss"
    assert (a.padding_side, a.model_sees_padding_mask, a.validation_from_train) == ("right", True, False)
    assert a.unspaced_kmer_benchmarks == ("gb",) and CORRECTED.unspaced_kmer_benchmarks == ()
    assert a.hyperparameter_selection == "test"          # the study's analysis, as for the SSMs
    # a quirk toggled on top of the attention recipe keeps the rest of it
    p = get_protocol({"base": "original", "unspaced_kmer_benchmarks": []}, "dnabert")
    assert p.unspaced_kmer_benchmarks == () and p.recipe == "hf_trainer" and p.name.startswith("original[")
    assert a.to_dict()["unspaced_kmer_benchmarks"] == ["gb"]
