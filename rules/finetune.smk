# Stage 4 — fine-tuning. A run is (protocol, benchmark, task, model, tokenizer, hp, seed);
# one job trains a *pack* — `finetune_pack` grid points of one protocol x task x model x
# tokenizer, each with every seed — in one process (the task is read and tokenized once),
# and writes each run's folder on its own, atomically:
#   results/finetune/{protocol}/{benchmark}/{task}/{model}/{tokenizer}/{hp}/seed{seed}/
# The job's declared output is the pack's manifest (pack-{pack}.tsv: its runs and their
# metrics.json); run folders outlive a failed or killed job, and a rerun keeps those the
# same run wrote (identity.json) and trains the rest. Test metrics are computed once per
# run, on the whole test set, and every prediction is kept.


rule finetune:
    input:
        data="data/{benchmark}/{task}",
        tokenizer=finetune_tokenizer,
        pretrained=pretrained_model,
    output:
        manifest=PACK,
    params:
        root=lambda wc: PACK_ROOT.format(**wc),
        seeds=" ".join(str(s) for s in config["seeds"]),
        grid=lambda wc: " ".join(pack_grid(wc)),
        arch=lambda wc: config["models"][wc.model]["arch"],
        hparams=hparams_arg,
        settings=finetune_params,
        pretrained=model_source_arg,
        tokenizer=tokenizer_arg,
    log:
        "logs/finetune/{protocol}/{benchmark}/{task}/{model}/{tokenizer}/pack-{pack}.log",
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
        " --seeds {params.seeds} --grid {params.grid} --protocol {wildcards.protocol} --threads {threads}"
        " --settings {params.settings} --model-args {params.hparams} {params.pretrained}"
        " --out-root {params.root:q} --manifest {output.manifest:q} > {log:q} 2>&1"
