# Stage 1 — data: download (or, for the demo, simulate) the benchmarks and the pretraining
# genome, cut the pretraining intervals per split, and prepare every task into one format:
#   data/{benchmark}/{task}/{train,dev,test}.csv + task.json; and fetch the released
# checkpoints the config names: resources/checkpoints/{model}/


rule simulate_genome:
    output:
        fasta="resources/pretrain/simulated/genome.fa",
        bed="resources/pretrain/simulated/sequences_human.bed",
    params:
        spec=as_json(config["pretrain_data"].get("simulate", {})),
    log:
        "logs/simulate_genome.log",
    threads: resource("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
        cpus_per_task=res("default", "threads"),
    conda:
        ENV
    shell:
        "dnatok simulate genome --spec {params.spec} --fasta {output.fasta} --bed {output.bed} > {log} 2>&1"


rule download_pretrain_data:
    output:
        fasta="resources/pretrain/hg38/hg38.ml.fa.gz",
        bed="resources/pretrain/hg38/sequences_human.bed",
    params:
        genome=as_json(config["pretrain_data"].get("genome", {})),
        intervals=as_json(config["pretrain_data"].get("intervals", {})),
        mirror=opt("--mirror", config["pretrain_data"].get("mirror")),
    log:
        "logs/download_pretrain_data.log",
    threads: resource("download", "threads")
    resources:
        mem_mb=res("download", "mem_mb"),
        runtime=res("download", "runtime"),
        cpus_per_task=res("download", "threads"),
    conda:
        ENV
    shell:
        "(dnatok data download --source {params.genome} --dest {output.fasta} {params.mirror}"
        " && dnatok data download --source {params.intervals} --dest {output.bed} {params.mirror}) > {log} 2>&1"


rule extract_pretrain_split:
    input:
        unpack(pretrain_sources),
    output:
        "data/pretrain/{split}.fa",
    log:
        "logs/extract_pretrain_split/{split}.log",
    threads: resource("extract_pretrain_split", "threads")
    resources:
        mem_mb=res("extract_pretrain_split", "mem_mb"),
        runtime=res("extract_pretrain_split", "runtime"),
        cpus_per_task=res("extract_pretrain_split", "threads"),
    conda:
        ENV
    shell:
        "dnatok data extract --genome {input.fasta} --bed {input.bed} --split {wildcards.split} --out {output} > {log} 2>&1"


rule simulate_task:
    output:
        directory("resources/{benchmark}/raw/{task}"),
    params:
        spec=lambda wc: as_json(benchmark_conf(wc.benchmark)["tasks"][wc.task]),
    log:
        "logs/simulate_task/{benchmark}/{task}.log",
    threads: resource("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
        cpus_per_task=res("default", "threads"),
    conda:
        ENV
    shell:
        "dnatok simulate task --spec {params.spec} --out {output} > {log} 2>&1"


rule download_benchmark:
    output:
        "resources/{benchmark}/{filename}",
    wildcard_constraints:
        filename=r"[^/]+\.zip|hub",
    params:
        source=lambda wc: as_json(benchmark_conf(wc.benchmark)["source"]),
        mirror=lambda wc: opt("--mirror", benchmark_conf(wc.benchmark).get("mirror")),
    log:
        "logs/download_benchmark/{benchmark}/{filename}.log",
    threads: resource("download", "threads")
    resources:
        mem_mb=res("download", "mem_mb"),
        runtime=res("download", "runtime"),
        cpus_per_task=res("download", "threads"),
    conda:
        ENV
    shell:
        "dnatok data download --source {params.source} --dest {output} {params.mirror} > {log} 2>&1"


rule gb_references:
    input:
        lambda wc: f"resources/{wc.benchmark}/{benchmark_conf(wc.benchmark)['source']['filename']}",
    output:
        directory("resources/{benchmark}/references"),
    params:
        tasks=lambda wc: " ".join(opt("--task", t) for t in tasks_of(wc.benchmark)),
        mirror=lambda wc: opt("--mirror", benchmark_conf(wc.benchmark).get("reference_mirror")),
    log:
        "logs/gb_references/{benchmark}.log",
    threads: resource("download", "threads")
    resources:
        mem_mb=res("download", "mem_mb"),
        runtime=res("download", "runtime"),
        cpus_per_task=res("download", "threads"),
    conda:
        ENV
    shell:
        "dnatok data gb-references --source {input} {params.tasks} --dest {output} {params.mirror} > {log} 2>&1"


rule prepare_task:
    input:
        unpack(benchmark_source),
    output:
        directory("data/{benchmark}/{task}"),
    params:
        fmt=lambda wc: PREPARE_FORMAT[benchmark_conf(wc.benchmark)["format"]],
        info=lambda wc: as_json(task_info(wc.benchmark, wc.task)),
        references=lambda wc, input: opt("--reference", input.references) if "references" in input.keys() else "",
        allow_missing=lambda wc: "--allow-missing-regions" if benchmark_conf(wc.benchmark).get("allow_missing_regions") else "",
    log:
        "logs/prepare_task/{benchmark}/{task}.log",
    threads: resource("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
        cpus_per_task=res("default", "threads"),
    conda:
        ENV
    shell:
        "dnatok data prepare --benchmark {params.fmt} --task {wildcards.task} --source {input.source}"
        " --task-json {params.info} {params.references} {params.allow_missing} --out {output} > {log} 2>&1"


rule leakage_report:
    input:
        lambda wc: expand("data/{benchmark}/{task}", benchmark=wc.benchmark, task=tasks_of(wc.benchmark)),
    output:
        "results/{benchmark}/leakage.tsv",
    log:
        "logs/leakage_report/{benchmark}.log",
    threads: resource("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
        cpus_per_task=res("default", "threads"),
    conda:
        ENV
    shell:
        "dnatok data leakage {input} --out {output} > {log} 2>&1"


rule download_checkpoint:
    # A released checkpoint (config: models.<m>.checkpoint + revision, or a local mirror),
    # with a sha256 manifest beside it, loaded once strictly to fail here if it is wrong.
    output:
        directory("resources/checkpoints/{model}"),
    params:
        repo=lambda wc: shlex.quote(config["models"][wc.model]["checkpoint"]),
        revision=lambda wc: opt("--revision", config["models"][wc.model].get("revision")),
        mirror=lambda wc: opt("--mirror", config["models"][wc.model].get("mirror")),
        arch=lambda wc: config["models"][wc.model]["arch"],
    log:
        "logs/download_checkpoint/{model}.log",
    threads: resource("download", "threads")
    resources:
        mem_mb=res("download", "mem_mb"),
        runtime=res("download", "runtime"),
        cpus_per_task=res("download", "threads"),
    conda:
        ENV
    shell:
        "dnatok checkpoint fetch --repo {params.repo} {params.revision} {params.mirror} --arch {params.arch}"
        " --dest {output:q} > {log:q} 2>&1"
