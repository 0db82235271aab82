# Stage 2 — tokenizers: trained from the pretraining *train* split only (never from
# fine-tuning data), saved as Hugging Face fast tokenizers, then described by numbers.


rule train_tokenizer:
    # char, k-mer and BPE: CPU
    input:
        corpus=tokenizer_corpus,
    output:
        directory("results/tokenizers/{tokenizer}"),
    wildcard_constraints:
        tokenizer=tokenizer_names(learned=False),
    params:
        spec=lambda wc: as_json(dnaconf.tokenizer_spec(config, wc.tokenizer)),
        corpus=lambda wc, input: opt("--corpus", input.corpus),
    log:
        "logs/train_tokenizer/{tokenizer}.log",
    benchmark:
        "benchmarks/train_tokenizer/{tokenizer}.tsv"
    threads: resource("train_tokenizer", "threads")
    resources:
        mem_mb=res("train_tokenizer", "mem_mb"),
        runtime=res("train_tokenizer", "runtime"),
        cpus_per_task=res("train_tokenizer", "threads"),
    conda:
        ENV
    shell:
        "dnatok tokenizer train --spec {params.spec} --out {output} {params.corpus} > {log} 2>&1"


rule train_learned_tokenizer:
    # vq, hrq: a network (VQDNA's tokenizer) trained on the same split, a GPU if given;
    # resumes from <out>.ckpt/ when a job is requeued
    input:
        corpus="data/pretrain/train.fa",
    output:
        directory("results/tokenizers/{tokenizer}"),
    wildcard_constraints:
        tokenizer=tokenizer_names(learned=True),
    params:
        spec=lambda wc: as_json(dnaconf.tokenizer_spec(config, wc.tokenizer)),
    log:
        "logs/train_tokenizer/{tokenizer}.log",
    benchmark:
        "benchmarks/train_tokenizer/{tokenizer}.tsv"
    threads: resource("train_learned_tokenizer", "threads")
    resources:
        mem_mb=res("train_learned_tokenizer", "mem_mb"),
        runtime=res("train_learned_tokenizer", "runtime"),
        cpus_per_task=res("train_learned_tokenizer", "threads"),
        gpu=res("train_learned_tokenizer", "gpu"),
    conda:
        GPU_ENV
    shell:
        "dnatok tokenizer train --spec {params.spec} --out {output} --corpus {input.corpus} > {log} 2>&1"


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
