# Stage 3 — pretraining: each pretrainable model x each tokenizer, on windows of the
# pretraining genome's train intervals (MLM for bidirectional models, next-token
# prediction for Mamba). The declared outputs are only the files written when training
# ends: Snakemake deletes a failed job's outputs, and a retried or requeued job must find
# checkpoints/ and train_log.tsv in the same folder to resume. A checkpoint resumes only
# when every setting, the tokenizer's content and the training data are those of the run
# that wrote it; otherwise it is moved aside and training starts from step 0.


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
        hparams=hparams_arg,
        settings=pretrain_params,
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
        "dnatok pretrain --model {params.arch} --tokenizer {input.tokenizer:q}"
        " --train-fasta {input.train:q} --valid-fasta {input.valid:q} --out {params.outdir:q}"
        " --threads {threads} --settings {params.settings} --model-args {params.hparams} >> {log:q} 2>&1"
