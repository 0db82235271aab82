# Stage 6 — nucleotide-level evaluation, the BEND way (config `bend:`). Each task is a BED
# (+ HDF5 labels) over a reference: built here from gene models (gene finding, 9 classes
# per base) or imported from BEND's release. Every model with weights of its own embeds
# the task once, frozen, at base resolution (a token's vector repeated over the bases it
# owns; none for per-base tokenizers; the mode is recorded); a small CNN probe is trained
# per seed on those embeddings and on one-hot bases (the supervised baseline), and the
# runs go through the same summary and significance code as fine-tuning. Zero-shot
# variant effects: ref/alt embedding distance at splice-breaking vs deep-intronic SNVs.


rule download_bend_file:
    output:
        "resources/bend/{task}/{filename}",
    wildcard_constraints:
        filename=r"[^/]+",
    params:
        source=lambda wc: as_json(bend_download(wc)[0]),
        mirror=lambda wc: opt("--mirror", bend_download(wc)[1]),
    log:
        "logs/download_bend_file/{task}/{filename}.log",
    threads: resource("download", "threads")
    resources:
        mem_mb=res("download", "mem_mb"),
        runtime=res("download", "runtime"),
        cpus_per_task=res("download", "threads"),
    conda:
        ENV
    shell:
        "dnatok data download --source {params.source} --dest {output:q} {params.mirror} > {log:q} 2>&1"


rule bend_task:
    input:
        unpack(bend_task_inputs),
    output:
        directory("data/bend/{task}"),
    params:
        command=bend_task_args,
    log:
        "logs/bend_task/{task}.log",
    threads: resource("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
        cpus_per_task=res("default", "threads"),
    conda:
        ENV
    shell:
        "dnatok bend {params.command} --genome {input.genome:q} --out {output:q} > {log:q} 2>&1"


rule bend_embed:
    input:
        unpack(bend_model_inputs),
        task="data/bend/{task}",
        genome=lambda wc: bend_genome(),
    output:
        directory(BEND_EMB),
    params:
        model=bend_model_args,
        chunk=opt("--chunk-bp", config.get("bend", {}).get("chunk_bp")),
    log:
        "logs/bend_embed/{task}/{model}/{tokenizer}.log",
    threads: resource("bend_embed", "threads")
    resources:
        mem_mb=res("bend_embed", "mem_mb"),
        runtime=res("bend_embed", "runtime"),
        cpus_per_task=res("bend_embed", "threads"),
        gpu=res("bend_embed", "gpu"),
    conda:
        GPU_ENV
    shell:
        "dnatok bend embed {params.model} --task {input.task:q} --genome {input.genome:q}"
        " {params.chunk} --out {output:q} > {log:q} 2>&1"


rule bend_probe:
    input:
        task="data/bend/{task}",
        embeddings=BEND_EMB,
    output:
        directory(BEND_PROBE),
    params:
        settings=bend_probe_args,
    log:
        "logs/bend_probe/{task}/{model}/{tokenizer}/seed{seed}.log",
    threads: resource("bend_probe", "threads")
    resources:
        mem_mb=res("bend_probe", "mem_mb"),
        runtime=res("bend_probe", "runtime"),
        cpus_per_task=res("bend_probe", "threads"),
        gpu=res("bend_probe", "gpu"),
    conda:
        GPU_ENV
    shell:
        "dnatok bend probe --task {input.task:q} --embeddings {input.embeddings:q} --seed {wildcards.seed}"
        " --model-name {wildcards.model} --tokenizer-name {wildcards.tokenizer} {params.settings}"
        " --out {output:q} > {log:q} 2>&1"


rule bend_runs:
    # The probe runs in the runs-table layout of fine-tuning (benchmark `bend`,
    # protocol `bend_probe`), so summaries and paired tests are the same code.
    input:
        bend_probe_dirs(),
    output:
        "results/bend/probe_runs.tsv",
    params:
        metrics=lambda wc, input: " ".join(shlex.quote(f"{d}/metrics.json") for d in input),
    log:
        "logs/bend_runs.log",
    threads: resource("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
        cpus_per_task=res("default", "threads"),
    conda:
        ENV
    shell:
        "dnatok stats collect --metrics {params.metrics} --out {output:q} > {log:q} 2>&1"


rule bend_summary:
    input:
        "results/bend/probe_runs.tsv",
    output:
        report("results/bend/probe_summary.tsv", caption="../workflow/report/bend.rst", category="BEND"),
    log:
        "logs/bend_summary.log",
    threads: resource("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
        cpus_per_task=res("default", "threads"),
    conda:
        ENV
    shell:
        "dnatok stats summary --runs {input:q} --out {output:q} > {log:q} 2>&1"


rule bend_significance:
    input:
        "results/bend/probe_runs.tsv",
    output:
        report("results/bend/probe_significance.tsv", caption="../workflow/report/bend.rst", category="BEND"),
    params:
        a=config["compare"][0],
        b=config["compare"][1],
    log:
        "logs/bend_significance.log",
    threads: resource("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
        cpus_per_task=res("default", "threads"),
    conda:
        ENV
    shell:
        "dnatok stats significance --runs {input:q} --a {params.a} --b {params.b} --out {output:q} > {log:q} 2>&1"


rule bend_variant_set:
    input:
        unpack(bend_task_inputs),
    output:
        "data/bend/variants/{task}.tsv",
    params:
        fmt=lambda wc: bendconf.task_conf(config, wc.task)["annotation_format"],
        deep=lambda wc: bendconf.variant_settings(config)["deep_per_intron"],
        distance=lambda wc: bendconf.variant_settings(config)["min_intron_distance"],
        seed=lambda wc: bendconf.variant_settings(config)["seed"],
    log:
        "logs/bend_variant_set/{task}.log",
    threads: resource("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
        cpus_per_task=res("default", "threads"),
    conda:
        ENV
    shell:
        "dnatok bend variants --annotation {input.annotation:q} --format {params.fmt} --genome {input.genome:q}"
        " --deep-per-intron {params.deep} --min-intron-distance {params.distance} --seed {params.seed}"
        " --out {output:q} > {log:q} 2>&1"


rule bend_score_variants:
    input:
        unpack(bend_model_inputs),
        variants=lambda wc: f"data/bend/variants/{bendconf.variant_settings(config)['task']}.tsv",
        genome=lambda wc: bend_genome(),
    output:
        scores=BEND_SCORES,
        summary=BEND_SCORES.replace(".tsv", ".json"),
    params:
        model=bend_model_args,
        context=lambda wc: bendconf.variant_settings(config)["context_bp"],
    log:
        "logs/bend_score_variants/{model}/{tokenizer}.log",
    threads: resource("bend_embed", "threads")
    resources:
        mem_mb=res("bend_embed", "mem_mb"),
        runtime=res("bend_embed", "runtime"),
        cpus_per_task=res("bend_embed", "threads"),
        gpu=res("bend_embed", "gpu"),
    conda:
        GPU_ENV
    shell:
        "dnatok bend score-variants {params.model} --variants {input.variants:q} --genome {input.genome:q}"
        " --context-bp {params.context} --out {output.scores:q} > {log:q} 2>&1"


rule bend_variant_table:
    input:
        bend_variant_scores(),
    output:
        report("results/bend/variant_effects.tsv", caption="../workflow/report/bend.rst", category="BEND"),
    params:
        names=" ".join(f"{m}/{t}" for m, t in bendconf.evaluations(config, with_baseline=False)) if bendconf.enabled(config) else "",
    log:
        "logs/bend_variant_table.log",
    threads: resource("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
        cpus_per_task=res("default", "threads"),
    conda:
        ENV
    shell:
        "dnatok bend variant-table --scores {input:q} --names {params.names} --out {output:q} > {log:q} 2>&1"
