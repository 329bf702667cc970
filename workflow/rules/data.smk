rule prepare_data:
    output:
        "resources/data/{task}/dataset.{fmt}",
    log:
        "logs/{task}/prepare_data_{fmt}.log",
    benchmark:
        "benchmarks/{task}/prepare_data_{fmt}.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=prepare_args,
    shell:
        "lskd prepare {params.args} --out {output} > {log} 2>&1"


rule prepare_subset:
    input:
        "resources/data/{task}/dataset.json",
    output:
        "resources/data/{task}/penultimate.json",
    log:
        "logs/{task}/prepare_subset.log",
    benchmark:
        "benchmarks/{task}/prepare_subset.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=subset_args,
    shell:
        "lskd subset {input} {output} {params.args} > {log} 2>&1"


rule import_weights:
    output:
        "resources/weights/{name}.pt",
    log:
        "logs/weights/{name}.log",
    benchmark:
        "benchmarks/weights/{name}.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=weights_args,
        file=weights_stamp,  # a replaced file reruns the import (and what uses it)
    shell:
        "lskd import-weights {params.args} {output} > {log} 2>&1"
