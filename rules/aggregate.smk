# Stage 5 — aggregation. Per benchmark and tokenizer: every run -> runs.tsv -> `select`
# (one grid point per protocol x task x model, by the protocol's rule, across seeds; the
# candidates and the reason in selection.tsv) -> selected.tsv, which is all that summaries,
# tests, figures and the study-level tables read. Study level: the paper's tables pooled
# across benchmarks (results/study/), both protocols side by side, and the report.


rule collect_runs:
    input:
        lambda wc: pack_manifests(wc.benchmark, wc.tokenizer),
    output:
        runs="results/{benchmark}/{tokenizer}/runs.tsv",
        provenance="results/{benchmark}/{tokenizer}/runs.provenance.json",
    log:
        "logs/collect_runs/{benchmark}/{tokenizer}.log",
    threads: resource("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
        cpus_per_task=res("default", "threads"),
    conda:
        ENV
    script:
        "../workflow/scripts/collect_runs.py"


rule select:
    input:
        "results/{benchmark}/{tokenizer}/runs.tsv",
    output:
        selected="results/{benchmark}/{tokenizer}/selected.tsv",
        candidates=report("results/{benchmark}/{tokenizer}/selection.tsv", caption="../workflow/report/selection.rst", category="Selection"),
    log:
        "logs/select/{benchmark}/{tokenizer}.log",
    threads: resource("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
        cpus_per_task=res("default", "threads"),
    conda:
        ENV
    shell:
        "dnatok stats select --input {input} --rule protocol --out {output.selected}"
        " --candidates {output.candidates} > {log} 2>&1"


rule summarize:
    input:
        "results/{benchmark}/{tokenizer}/selected.tsv",
    output:
        report("results/{benchmark}/{tokenizer}/summary.tsv", caption="../workflow/report/summary.rst", category="Summary"),
    log:
        "logs/summarize/{benchmark}/{tokenizer}.log",
    threads: resource("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
        cpus_per_task=res("default", "threads"),
    conda:
        ENV
    shell:
        "dnatok stats summary --runs {input} --tokenizer {wildcards.tokenizer} --out {output} > {log} 2>&1"


rule significance:
    input:
        a=f"results/{{benchmark}}/{config['compare'][0]}/selected.tsv",
        b=f"results/{{benchmark}}/{config['compare'][1]}/selected.tsv",
    output:
        report("results/{benchmark}/significance.tsv", caption="../workflow/report/significance.rst", category="Significance"),
    params:
        a=config["compare"][0],
        b=config["compare"][1],
    log:
        "logs/significance/{benchmark}.log",
    threads: resource("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
        cpus_per_task=res("default", "threads"),
    conda:
        ENV
    shell:
        "dnatok stats significance --runs {input.a} {input.b} --a {params.a} --b {params.b}"
        " --out {output} > {log} 2>&1"


rule figures:
    input:
        lambda wc: selected_tables([wc.benchmark]),
    output:
        report(
            directory("results/{benchmark}/figures"),
            patterns=["{name}.png"],
            caption="../workflow/report/figures.rst",
            category="Figures",
        ),
    params:
        a=config["compare"][0],
        b=config["compare"][1],
    log:
        "logs/figures/{benchmark}.log",
    threads: resource("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
        cpus_per_task=res("default", "threads"),
    conda:
        ENV
    shell:
        "dnatok stats figures --runs {input} --a {params.a} --b {params.b} --out-dir {output} > {log} 2>&1"


rule study_significance:
    # The paper's tests pool the tasks of every benchmark: per task (Bonferroni over its 44),
    # per category (over 9) and overall; tasks outside the 44 (GUE's yeast EMP) are left out.
    input:
        selected_tables(tokenizers=config["compare"]),
    output:
        report("results/study/significance.tsv", caption="../workflow/report/study.rst", category="Study"),
    params:
        a=config["compare"][0],
        b=config["compare"][1],
    log:
        "logs/study_significance.log",
    threads: resource("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
        cpus_per_task=res("default", "threads"),
    conda:
        ENV
    shell:
        "dnatok stats significance --runs {input} --a {params.a} --b {params.b} --drop-uncategorised"
        " --out {output} > {log} 2>&1"


rule study_means:
    # The paper's headline table: mean over a group's tasks of each model/tokenizer's
    # per-task mean test MCC (selected runs), by benchmark or by category, plus Overall.
    input:
        selected_tables(),
    output:
        table=report("results/study/means_{by}.tsv", caption="../workflow/report/study.rst", category="Study"),
        detail="results/study/means_{by}.detail.tsv",
        png="results/study/figures/mcc_means_{by}.png",
        pdf="results/study/figures/mcc_means_{by}.pdf",
    wildcard_constraints:
        by="benchmark|category",
    log:
        "logs/study_means/{by}.log",
    threads: resource("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
        cpus_per_task=res("default", "threads"),
    conda:
        ENV
    shell:
        "dnatok stats means --input {input} --by {wildcards.by} --plot-dir results/study/figures"
        " --out {output.table} > {log} 2>&1"


rule protocols_table:
    # Each task's MCC under the original and the corrected protocol: the quirks' effect.
    input:
        selected_tables(),
    output:
        report("results/study/protocols.tsv", caption="../workflow/report/study.rst", category="Study"),
    log:
        "logs/protocols_table.log",
    threads: resource("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
        cpus_per_task=res("default", "threads"),
    conda:
        ENV
    shell:
        "dnatok stats protocols --runs {input} --a original --b corrected --out {output} > {log} 2>&1"


rule report_tables:
    input:
        summaries=expand("results/{benchmark}/{tokenizer}/summary.tsv", benchmark=config["benchmarks"], tokenizer=used_tokenizers())
        + [t for t in bend_targets() if t.endswith("_summary.tsv")],
        significance=["results/study/significance.tsv"] + expand("results/{benchmark}/significance.tsv", benchmark=config["benchmarks"])
        + [t for t in bend_targets() if t.endswith("_significance.tsv")],
        tables=[t for t in study_targets() if t.endswith(".tsv") and t != "results/study/significance.tsv"]
        + [t for t in bend_targets() if t.endswith("variant_effects.tsv")],
        token_stats=expand("results/tokenizer_stats/{benchmark}/{tokenizer}.tsv", benchmark=config["benchmarks"], tokenizer=trained_tokenizers()),
        figures=[t for t in study_targets() if t.endswith(".png")] + expand("results/{benchmark}/figures", benchmark=config["benchmarks"]),
    output:
        md="results/report/index.md",
        tex="results/report/tables.tex",
    log:
        "logs/report_tables.log",
    threads: resource("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
        cpus_per_task=res("default", "threads"),
    conda:
        ENV
    shell:
        "dnatok stats report --tables {input.tables} --summaries {input.summaries} --significance {input.significance}"
        " --token-stats {input.token_stats} --figures {input.figures} --out-md {output.md} --out-tex {output.tex} > {log} 2>&1"
