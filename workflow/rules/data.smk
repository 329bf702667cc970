rule prepare_data:
    output:
        paths.DATASET,
    log:
        "logs/{task}/prepare_data_{fmt}.log",
    benchmark:
        "benchmarks/{task}/prepare_data_{fmt}.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=per_job(jobs.prepare_args),
    shell:
        "lskd prepare {params.args} --out {output} > {log} 2>&1"


rule prepare_subset:
    input:
        paths.fill(paths.DATASET, fmt="json"),
    output:
        paths.SUBSET,
    log:
        "logs/{task}/prepare_subset.log",
    benchmark:
        "benchmarks/{task}/prepare_subset.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=per_job(jobs.subset_args),
    shell:
        "lskd subset {input} {output} {params.args} > {log} 2>&1"


rule import_weights:
    output:
        paths.WEIGHTS,
    log:
        "logs/weights/{name}.log",
    benchmark:
        "benchmarks/weights/{name}.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=per_job(jobs.weights_args),
        file=per_job(jobs.weights_stamp),  # a replaced file reruns the import (and what uses it)
    shell:
        "lskd import-weights {params.args} {output} > {log} 2>&1"
