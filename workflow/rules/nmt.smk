rule prepare_nmt:
    output:
        data=directory(NMT_PREPARED),
        splits=nmt_report(f"{NMT_DATA}/splits.json", "splits"),
    log:
        "logs/nmt_{ntask}_{pair}/prepare_nmt.log",
    benchmark:
        "benchmarks/nmt_{ntask}_{pair}/prepare_nmt.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=nmt_prepare_args,
    shell:
        "lskd nmt-prepare --pair {wildcards.pair} {params.args} --out {output.data} "
        "--splits {output.splits} > {log} 2>&1"


rule train_nmt_teacher:
    input:
        data=NMT_PREPARED,
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
        **nmt_resources(),
    params:
        args=nmt_run_args("teacher"),
    shell:
        "lskd nmt-train {params.args} --threads {threads} --data {input.data} "
        "--model-out {output.model} > {log} 2>&1"


rule distill_nmt_students:
    input:
        data=NMT_PREPARED,
        teacher="results/<nmt_teacher_id>/model.pt",
    output:
        models=nmt_students("model.pt"),
        train=nmt_students("train.json"),
    log:
        "logs/<nmt_teacher_id>/distill_nmt_students.log",
    benchmark:
        "benchmarks/<nmt_teacher_id>/distill_nmt_students.tsv"
    conda:
        "../envs/lskd.yaml"
    threads: 1
    resources:
        **nmt_resources(),
    params:
        args=nmt_run_args("student"),
    shell:
        "lskd nmt-distill {params.args} --threads {threads} --data {input.data} "
        "--teacher {input.teacher} --model-out {output.models} > {log} 2>&1"


rule score_nmt_teacher:
    input:
        data=NMT_PREPARED,
        model="results/<nmt_teacher_id>/model.pt",
    output:
        nmt_report("results/<nmt_teacher_id>/metrics.json", "teacher"),
    log:
        "logs/<nmt_teacher_id>/score_nmt_teacher.log",
    benchmark:
        "benchmarks/<nmt_teacher_id>/score_nmt_teacher.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=nmt_score_args,
    shell:
        "lskd nmt-score {params.args} --models {input.model} --out {output} > {log} 2>&1"


rule score_nmt_students:
    input:
        data=NMT_PREPARED,
        models=nmt_students("model.pt"),
    output:
        nmt_student_reports(),
    log:
        "logs/<nmt_teacher_id>/score_nmt_students.log",
    benchmark:
        "benchmarks/<nmt_teacher_id>/score_nmt_students.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=nmt_score_args,
    shell:
        "lskd nmt-score {params.args} --models {input.models} --out {output} > {log} 2>&1"


rule make_nmt_table:
    input:
        nmt_runs("metrics.json"),
    output:
        csv="results/tables/table5_{ntask}.csv",
        md="results/tables/table5_{ntask}.md",
        tex="results/tables/table5_{ntask}.tex",
        html=nmt_report("results/tables/table5_{ntask}.html", "table"),
    log:
        "logs/tables/table5_{ntask}.log",
    benchmark:
        "benchmarks/tables/table5_{ntask}.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        paper=NMT_TABLE_FLAGS,  # --paper at paper scale: the paper's BLEU beside ours
    shell:
        "lskd nmt-table {input} --csv {output.csv} --md {output.md} --tex {output.tex} "
        "--html {output.html}{params.paper} > {log} 2>&1"
