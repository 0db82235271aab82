# Stage 5 — aggregation: per-run metrics -> summary tables (mean ± std over seeds),
# paired significance tests between the two compared tokenizers, figures and a report.


rule collect_runs:
    input:
        lambda wc: metrics_files(wc.benchmark, wc.tokenizer),
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


rule summarize:
    input:
        "results/{benchmark}/{tokenizer}/runs.tsv",
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
        a=f"results/{{benchmark}}/{config['compare'][0]}/runs.tsv",
        b=f"results/{{benchmark}}/{config['compare'][1]}/runs.tsv",
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
        lambda wc: expand("results/{benchmark}/{tokenizer}/runs.tsv", benchmark=wc.benchmark, tokenizer=config["tokenizers"]),
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


rule report_tables:
    input:
        summaries=expand("results/{benchmark}/{tokenizer}/summary.tsv", benchmark=config["benchmarks"], tokenizer=config["tokenizers"]),
        significance=expand("results/{benchmark}/significance.tsv", benchmark=config["benchmarks"]),
        token_stats=expand("results/tokenizer_stats/{benchmark}/{tokenizer}.tsv", benchmark=config["benchmarks"], tokenizer=config["tokenizers"]),
        figures=expand("results/{benchmark}/figures", benchmark=config["benchmarks"]),
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
        "dnatok stats report --summaries {input.summaries} --significance {input.significance}"
        " --token-stats {input.token_stats} --figures {input.figures} --out-md {output.md} --out-tex {output.tex} > {log} 2>&1"
