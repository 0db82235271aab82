# Stage 4 — fine-tuning. A run is (protocol, benchmark, task, model, tokenizer, hp, seed);
# one job trains every seed of one grid point `hp` in one process (the task is read and
# tokenized once) and writes each run's folder on its own, atomically:
#   results/finetune/{protocol}/{benchmark}/{task}/{model}/{tokenizer}/{hp}/seed{seed}/
# Test metrics are computed once per run, on the whole test set, and every prediction is kept.


rule finetune:
    input:
        data="data/{benchmark}/{task}",
        tokenizer=finetune_tokenizer,
        pretrained=pretrained_model,
    output:
        metrics=seed_files("metrics.json"),
        predictions=seed_files("predictions.tsv"),
        provenance=seed_files("provenance.json"),
    params:
        root=lambda wc: RUN.format(**wc),
        seeds=" ".join(str(s) for s in config["seeds"]),
        arch=lambda wc: config["models"][wc.model]["arch"],
        hparams=hparams_arg,
        settings=finetune_params,
        pretrained=model_source_arg,
        tokenizer=tokenizer_arg,
    log:
        "logs/finetune/{protocol}/{benchmark}/{task}/{model}/{tokenizer}/{hp}.log",
    threads: resource("finetune", "threads")
    resources:
        mem_mb=res("finetune", "mem_mb"),
        runtime=finetune_runtime,
        cpus_per_task=res("finetune", "threads"),
        gpu=res("finetune", "gpu"),
    conda:
        GPU_ENV
    shell:
        "dnatok finetune --data {input.data:q} --model {params.arch} --tokenizer {params.tokenizer}"
        " --seeds {params.seeds} --protocol {wildcards.protocol} --threads {threads}"
        " --settings {params.settings} --model-args {params.hparams} {params.pretrained}"
        " --out-root {params.root:q} > {log:q} 2>&1"
