from collections import Counter

from dnatok import registry


def test_study_has_44_tasks_in_9_categories():
    study = registry.study_tasks()
    assert len(study) == 44
    assert set(t.category for t in study.values()) == set(registry.CATEGORIES)
    counts = Counter(t.category for t in study.values())
    assert counts["promoters"] == 9 and counts["transcription_factors"] == 10
    assert counts["epigenetic_marks"] == 10 and counts["splice_sites"] == 4
    assert counts["coding"] == counts["taxonomic"] == counts["virus_variant"] == 1


def test_benchmark_sizes_match_sources():
    assert {b: len(t) for b, t in registry.TASKS.items()} == {"gue": 28, "gb": 8, "nt": 18}


def test_study_lengths_are_the_original_configs():
    gb = [registry.TASKS["gb"][n].study_len for n in (
        "dummy_mouse_enhancers", "demo_coding_vs_intergenomic", "demo_human_or_worm", "human_enhancers_cohn",
        "human_enhancers_ensembl", "human_ensembl_regulatory", "human_nontata_promoters", "human_ocr_ensembl")]
    assert gb == [1024, 200, 200, 500, 512, 512, 251, 512]
    core = registry.get_task("gue", "prom_core_tata")
    assert (core.max_len, core.study_len) == (70, 300)
    assert registry.get_task("gue", "covid").num_classes == 9


def test_task_recognised_from_gue_path_and_aliases():
    assert registry.task_from_path("/x/GUE/prom/prom_core_tata").name == "prom_core_tata"
    assert registry.task_from_path("data/gue/tf_3/").name == "tf_3"
    assert registry.task_from_path("/somewhere/else") is None
    assert registry.category_of("human_tf_2") == "transcription_factors"
    assert registry.category_of("virus_covid") == "virus_variant"
    assert registry.category_of("emp_H3") is None
