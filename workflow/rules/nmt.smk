rule prepare_nmt:
    output:
        data=directory(paths.NMT_PREPARED),
        splits=reported(f"{paths.NMT_DATA}/splits.json", "nmt_splits"),
    log:
        f"logs/{paths.NMT_STUDY}/prepare_nmt.log",
    benchmark:
        f"benchmarks/{paths.NMT_STUDY}/prepare_nmt.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=per_job(jobs.nmt_prepare_args),
    shell:
        "lskd nmt-prepare --pair {wildcards.pair} {params.args} --out {output.data} "
        "--splits {output.splits} > {log} 2>&1"


rule train_nmt_teacher:
    input:
        data=paths.NMT_PREPARED,
    output:
        model="results/<nmt_teacher_id>/model.pt",
        train="results/<nmt_teacher_id>/train.json",
    log:
        "logs/<nmt_teacher_id>/train_nmt_teacher.log",
    benchmark:
        "benchmarks/<nmt_teacher_id>/train_nmt_teacher.tsv"
    conda:
        "../envs/lskd.yaml"
    threads: 1
    resources:
        **NMT_RESOURCES,
    params:
        args=per_job(jobs.nmt_run_args, "teacher"),
    shell:
        "lskd nmt-train {params.args} --threads {threads} --data {input.data} "
        "--model-out {output.model} > {log} 2>&1"


rule distill_nmt_students:
    input:
        data=paths.NMT_PREPARED,
        teacher="results/<nmt_teacher_id>/model.pt",
    output:
        models=GRID.nmt_sweep_outputs(paths.MODEL),
        train=GRID.nmt_sweep_outputs("train.json"),
    log:
        "logs/<nmt_teacher_id>/distill_nmt_students.log",
    benchmark:
        "benchmarks/<nmt_teacher_id>/distill_nmt_students.tsv"
    conda:
        "../envs/lskd.yaml"
    threads: 1
    resources:
        **NMT_RESOURCES,
    params:
        args=per_job(jobs.nmt_run_args, "student"),
    shell:
        "lskd nmt-distill {params.args} --threads {threads} --data {input.data} "
        "--teacher {input.teacher} --model-out {output.models} > {log} 2>&1"


rule score_nmt_teacher:
    input:
        data=paths.NMT_PREPARED,
        model="results/<nmt_teacher_id>/model.pt",
    output:
        reported("results/<nmt_teacher_id>/metrics.json", "nmt_teacher"),
    log:
        "logs/<nmt_teacher_id>/score_nmt_teacher.log",
    benchmark:
        "benchmarks/<nmt_teacher_id>/score_nmt_teacher.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=per_job(jobs.nmt_score_args),
    shell:
        "lskd nmt-score {params.args} --models {input.model} --out {output} > {log} 2>&1"


rule score_nmt_students:
    input:
        data=paths.NMT_PREPARED,
        models=GRID.nmt_sweep_outputs(paths.MODEL),
    output:
        sweep_reports("nmt_student", GRID.nmt_sweep_outputs(paths.METRICS)),
    log:
        "logs/<nmt_teacher_id>/score_nmt_students.log",
    benchmark:
        "benchmarks/<nmt_teacher_id>/score_nmt_students.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=per_job(jobs.nmt_score_args),
    shell:
        "lskd nmt-score {params.args} --models {input.models} --out {output} > {log} 2>&1"


rule make_nmt_table:
    input:
        GRID.nmt_runs(paths.METRICS),
    output:
        csv=f"{paths.TABLE5}.csv",
        md=f"{paths.TABLE5}.md",
        tex=f"{paths.TABLE5}.tex",
        html=reported(f"{paths.TABLE5}.html", "nmt_table"),
        curves=reported(paths.TABLE5_CURVES, "nmt_curves"),
        headline=reported(f"{paths.TABLE5}_headline.html", "nmt_headline"),
    log:
        "logs/tables/table5_{ntask}.log",
    benchmark:
        "benchmarks/tables/table5_{ntask}.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        paper=NMT_TABLE_FLAGS,  # --paper at paper scale: the paper's BLEU beside ours
    shell:
        f"lskd nmt-table {{input}} {TABLE_FILES} --curves {{output.curves}} "
        "--headline-html {output.headline}{params.paper} > {log} 2>&1"
