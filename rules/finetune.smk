# Stage 4 — fine-tuning: one job per benchmark x task x model x tokenizer x seed.
# Test metrics are computed once, on the whole test set, and every prediction is kept.


rule finetune:
    input:
        data="data/{benchmark}/{task}",
        tokenizer="results/tokenizers/{tokenizer}",
        pretrained=pretrained_model,
    output:
        metrics="results/finetune/{benchmark}/{task}/{model}/{tokenizer}/seed{seed}/metrics.json",
        predictions="results/finetune/{benchmark}/{task}/{model}/{tokenizer}/seed{seed}/predictions.tsv",
        provenance="results/finetune/{benchmark}/{task}/{model}/{tokenizer}/seed{seed}/provenance.json",
    params:
        outdir=lambda wc, output: os.path.dirname(output.metrics),
        arch=lambda wc: config["models"][wc.model]["arch"],
        args=lambda wc: as_json(model_args(wc.model)),
        settings=lambda wc: as_json(finetune_settings(wc.benchmark)),
        protocol=config["protocol"],
        pretrained=lambda wc, input: f"--pretrained {os.path.dirname(input.pretrained)}" if input.pretrained else "",
    log:
        "logs/finetune/{benchmark}/{task}/{model}/{tokenizer}/seed{seed}.log",
    threads: resource("finetune", "threads")
    resources:
        mem_mb=res("finetune", "mem_mb"),
        runtime=res("finetune", "runtime"),
        cpus_per_task=res("finetune", "threads"),
        gpu=res("finetune", "gpu"),
    conda:
        GPU_ENV
    shell:
        "dnatok finetune --data {input.data} --model {params.arch} --name {wildcards.model}"
        " --tokenizer {input.tokenizer} --seed {wildcards.seed} --protocol {params.protocol} --threads {threads}"
        " --settings {params.settings} --model-args {params.args} {params.pretrained}"
        " --out {params.outdir} > {log} 2>&1"
