rule prepare_nmt:
    output:
        data=directory("resources/data/nmt_{pair}/prepared"),
        splits=nmt_report("resources/data/nmt_{pair}/splits.json", "splits"),
    log:
        "logs/nmt_{pair}/prepare_nmt.log",
    benchmark:
        "benchmarks/nmt_{pair}/prepare_nmt.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=nmt_prepare_args,
    shell:
        "lskd nmt-prepare --pair {wildcards.pair} {params.args} --out {output.data} "
        "--splits {output.splits} > {log} 2>&1"


rule train_nmt_teacher:
    input:
        data="resources/data/nmt_{pair}/prepared",
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
        hp=nmt_hp("teacher"),
    shell:
        "lskd nmt-train --pair {wildcards.pair} --alpha {wildcards.alpha} "
        "--seed {wildcards.tseed} --hp {params.hp} --data {input.data} "
        "--model-out {output.model} --threads {threads} > {log} 2>&1"


rule distill_nmt_students:
    input:
        data="resources/data/nmt_{pair}/prepared",
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
        hp=nmt_hp("student"),
        temps=" ".join(TEMPS),
    shell:
        "lskd nmt-distill --pair {wildcards.pair} --alpha {wildcards.alpha} "
        "--seed {wildcards.tseed} --hp {params.hp} --data {input.data} --T {params.temps} "
        "--teacher {input.teacher} --model-out {output.models} > {log} 2>&1"


rule score_nmt_teacher:
    input:
        data="resources/data/nmt_{pair}/prepared",
        model="results/<nmt_teacher_id>/model.pt",
        train="results/<nmt_teacher_id>/train.json",
    output:
        nmt_report("results/<nmt_teacher_id>/metrics.json", "teacher"),
    log:
        "logs/<nmt_teacher_id>/score_nmt_teacher.log",
    benchmark:
        "benchmarks/<nmt_teacher_id>/score_nmt_teacher.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        gen=NMT_GENERATE,
    shell:
        "lskd nmt-score --pair {wildcards.pair} --data {input.data} --gen {params.gen} "
        "--models {input.model} --metrics-out {output} > {log} 2>&1"


rule score_nmt_students:
    input:
        data="resources/data/nmt_{pair}/prepared",
        models=nmt_students("model.pt"),
        train=nmt_students("train.json"),
    output:
        nmt_student_reports(),
    log:
        "logs/<nmt_teacher_id>/score_nmt_students.log",
    benchmark:
        "benchmarks/<nmt_teacher_id>/score_nmt_students.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        gen=NMT_GENERATE,
    shell:
        "lskd nmt-score --pair {wildcards.pair} --data {input.data} --gen {params.gen} "
        "--models {input.models} --metrics-out {output} > {log} 2>&1"


rule make_nmt_table:
    input:
        nmt_runs("metrics.json"),
    output:
        csv="results/tables/table5_nmt.csv",
        md="results/tables/table5_nmt.md",
        tex="results/tables/table5_nmt.tex",
        html=nmt_report("results/tables/table5_nmt.html", "table"),
    log:
        "logs/tables/table5_nmt.log",
    benchmark:
        "benchmarks/tables/table5_nmt.tsv"
    conda:
        "../envs/lskd.yaml"
    shell:
        "lskd nmt-table {input} --csv {output.csv} --md {output.md} --tex {output.tex} "
        "--html {output.html} > {log} 2>&1"
