# Per-run analysis (penultimate features, projection, diffusion metrics), one job per
# set of runs so torch and the data load once: every teacher of a (task, arch), every
# student of a (teacher arch, student arch, transfer set).
rule analyse_teachers:
    input:
        models=teacher_runs(["model.pt"]),
        data=penultimate_data,
    output:
        teacher_runs(ANALYSIS_FILES),
    log:
        "logs/{task}/analyse_teachers_{tarch}.log",
    benchmark:
        "benchmarks/{task}/analyse_teachers_{tarch}.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=analysis_args,
    shell:
        "lskd analyse {input.models} --data {input.data} {params.args} > {log} 2>&1"


rule analyse_students:
    input:
        models=student_runs(["model.pt"]),
        data=penultimate_data,
    output:
        student_runs(ANALYSIS_FILES),
    log:
        "logs/{task}/analyse_students_{tarch}-{sarch}_{xfer}.log",
    benchmark:
        "benchmarks/{task}/analyse_students_{tarch}-{sarch}_{xfer}.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=analysis_args,
    shell:
        "lskd analyse {input.models} --data {input.data} {params.args} > {log} 2>&1"
