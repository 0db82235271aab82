# Stage 3 — pretraining: each pretrainable model x each tokenizer, on windows of the
# pretraining genome's train intervals (MLM for bidirectional models, next-token
# prediction for Mamba). Checkpoints live beside the output, not inside it: Snakemake
# deletes a failed job's outputs, and a requeued job must find its checkpoints to resume.


rule pretrain:
    input:
        tokenizer="results/tokenizers/{tokenizer}",
        train="data/pretrain/train.fa",
        valid="data/pretrain/valid.fa",
    output:
        directory("results/pretrain/{model}/{tokenizer}/model"),
    params:
        arch=lambda wc: config["models"][wc.model]["arch"],
        args=lambda wc: as_json(model_args(wc.model)),
        settings=as_json(config["pretrain"]),
        checkpoints="results/pretrain/{model}/{tokenizer}/checkpoints",
    log:
        "logs/pretrain/{model}/{tokenizer}.log",
    benchmark:
        "benchmarks/pretrain/{model}/{tokenizer}.tsv"
    threads: resource("pretrain", "threads")
    resources:
        mem_mb=res("pretrain", "mem_mb"),
        runtime=res("pretrain", "runtime"),
        cpus_per_task=res("pretrain", "threads"),
        gpu=res("pretrain", "gpu"),
    conda:
        GPU_ENV
    shell:
        # Append to the log: a resumed job keeps the history of its earlier attempts.
        "dnatok pretrain --model {params.arch} --name {wildcards.model} --tokenizer {input.tokenizer}"
        " --train-fasta {input.train} --valid-fasta {input.valid} --out {output}"
        " --checkpoint-dir {params.checkpoints} --settings {params.settings} --model-args {params.args} >> {log} 2>&1"
