# Per-run analysis (penultimate features, projection, diffusion metrics), one job per
# set of runs so torch and the data load once: every teacher of a (task, arch), every
# student of a (teacher arch, student arch, transfer set).
rule analyse_teachers:
    input:
        models=GRID.teacher_runs([paths.MODEL]),
        data=per_job(Grid.penultimate_data),
    output:
        GRID.teacher_runs(paths.ANALYSIS_FILES),
    log:
        "logs/{task}/analyse_teachers_{tarch}.log",
    benchmark:
        "benchmarks/{task}/analyse_teachers_{tarch}.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=per_job(jobs.analysis_args),
    shell:
        "lskd analyse {input.models} --data {input.data} {params.args} > {log} 2>&1"


rule analyse_students:
    input:
        models=GRID.student_runs([paths.MODEL]),
        data=per_job(Grid.penultimate_data),
    output:
        GRID.student_runs(paths.ANALYSIS_FILES),
    log:
        "logs/{task}/analyse_students_{tarch}-{sarch}_{xfer}.log",
    benchmark:
        "benchmarks/{task}/analyse_students_{tarch}-{sarch}_{xfer}.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=per_job(jobs.analysis_args),
    shell:
        "lskd analyse {input.models} --data {input.data} {params.args} > {log} 2>&1"
