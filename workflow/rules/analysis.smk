rule extract_penultimate:
    input:
        data=dataset,
        model="results/{run}/model.pt",
    output:
        "results/{run}/penultimate.npz",
    log:
        "logs/{run}/extract_penultimate.log",
    benchmark:
        "benchmarks/{run}/extract_penultimate.tsv"
    conda:
        "../envs/lskd.yaml"
    resources:
        **gpu_resources("light"),
    params:
        args=extract_args,
    shell:
        "lskd extract --model {input.model} --data {input.data} {params.args} "
        "--out {output} > {log} 2>&1"


rule project_penultimate:
    input:
        "results/{run}/penultimate.npz",
    output:
        "results/{run}/projection.npz",
    log:
        "logs/{run}/project_penultimate.log",
    benchmark:
        "benchmarks/{run}/project_penultimate.tsv"
    conda:
        "../envs/lskd.yaml"
    shell:
        "lskd project {input} {output} > {log} 2>&1"
