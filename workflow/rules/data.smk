rule prepare_data:
    output:
        "resources/data/{task}/dataset.npz",
    log:
        "logs/{task}/prepare_data.log",
    benchmark:
        "benchmarks/{task}/prepare_data.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=prepare_args,
    shell:
        "lskd prepare {params.args} --out {output} > {log} 2>&1"
