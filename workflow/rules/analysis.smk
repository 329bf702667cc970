rule extract_penultimate:
    input:
        model="results/{run}/model.pt",
        data=penultimate_data,
    output:
        "results/{run}/penultimate.npz",
    log:
        "logs/{run}/extract_penultimate.log",
    benchmark:
        "benchmarks/{run}/extract_penultimate.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=extract_args,
    shell:
        "lskd extract {input.model} {input.data} {output} {params.args} > {log} 2>&1"


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


rule measure_diffusion:
    input:
        "results/{run}/projection.npz",
    output:
        "results/{run}/diffusion.json",
    log:
        "logs/{run}/measure_diffusion.log",
    benchmark:
        "benchmarks/{run}/measure_diffusion.tsv"
    conda:
        "../envs/lskd.yaml"
    shell:
        "lskd diffusion {input} {output} > {log} 2>&1"
