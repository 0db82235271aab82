# Stage 3 — pretraining: each pretrainable model x each tokenizer, on windows of the
# pretraining genome's train intervals (MLM for bidirectional models, next-token
# prediction for Mamba). The declared outputs are only the files written when training
# ends: Snakemake deletes a failed job's outputs, and a retried or requeued job must find
# checkpoints/ and train_log.tsv in the same folder to resume.


rule pretrain:
    input:
        tokenizer="results/tokenizers/{tokenizer}",
        train="data/pretrain/train.fa",
        valid="data/pretrain/valid.fa",
    output:
        config="results/pretrain/{model}/{tokenizer}/config.json",
        provenance="results/pretrain/{model}/{tokenizer}/provenance.json",
    params:
        outdir=lambda wc, output: os.path.dirname(output.config),
        arch=lambda wc: config["models"][wc.model]["arch"],
        args=lambda wc: as_json(model_args(wc.model)),
        settings=lambda wc, threads: as_json({**config["pretrain"], "threads": threads}),
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
        "dnatok pretrain --model {params.arch} --tokenizer {input.tokenizer}"
        " --train-fasta {input.train} --valid-fasta {input.valid} --out {params.outdir}"
        " --settings {params.settings} --model-args {params.args} >> {log} 2>&1"
