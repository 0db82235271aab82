# Stage 2 — tokenizers: trained from the pretraining *train* split only (never from
# fine-tuning data), saved as Hugging Face fast tokenizers, then described by numbers.


rule train_tokenizer:
    input:
        corpus=tokenizer_corpus,
    output:
        directory("results/tokenizers/{tokenizer}"),
    params:
        spec=lambda wc: as_json(dnaconf.tokenizer_spec(config, wc.tokenizer)),
        corpus=lambda wc, input: opt("--corpus", input.corpus),
    log:
        "logs/train_tokenizer/{tokenizer}.log",
    benchmark:
        "benchmarks/train_tokenizer/{tokenizer}.tsv"
    threads: resource("train_tokenizer", "threads")
    resources:
        # learned vocabularies (vq, hrq) train a network: their own resources, a GPU if given
        mem_mb=lambda wc: resource(tokenizer_rule(wc), "mem_mb"),
        runtime=lambda wc: resource(tokenizer_rule(wc), "runtime"),
        cpus_per_task=res("train_tokenizer", "threads"),
        gpu=lambda wc: resource(tokenizer_rule(wc), "gpu"),
    conda:
        ENV
    shell:
        "dnatok tokenizer train --spec {params.spec} --out {output} {params.corpus} > {log} 2>&1"


rule tokenizer_stats:
    input:
        tokenizer="results/tokenizers/{tokenizer}",
        tasks=lambda wc: expand("data/{benchmark}/{task}", benchmark=wc.benchmark, task=tasks_of(wc.benchmark)),
    output:
        tsv="results/tokenizer_stats/{benchmark}/{tokenizer}.tsv",
        plot=report(
            "results/tokenizer_stats/{benchmark}/{tokenizer}.png",
            caption="../workflow/report/tokenizer_stats.rst",
            category="Tokenizers",
        ),
    params:
        task_dirs=lambda wc, input: " ".join(f"--task-dir {d}" for d in input.tasks),
    log:
        "logs/tokenizer_stats/{benchmark}/{tokenizer}.log",
    threads: resource("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
        cpus_per_task=res("default", "threads"),
    conda:
        ENV
    shell:
        "dnatok tokenizer stats --tokenizer {input.tokenizer} --name {wildcards.tokenizer}"
        " {params.task_dirs} --out {output.tsv} --plot {output.plot} > {log} 2>&1"
