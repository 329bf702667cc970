rule distill_student:
    input:
        data=dataset,
        teacher="results/<teacher_id>/model.pt",
    output:
        model="results/<student_id>/model.pt",
        metrics=report(
            "results/<student_id>/metrics.json",
            caption="../report/metrics.rst",
            category="Runs",
            subcategory="Students",
            labels=run_labels("student"),
        ),
    log:
        "logs/<student_id>/distill_student.log",
    benchmark:
        "benchmarks/<student_id>/distill_student.tsv"
    conda:
        "../envs/lskd.yaml"
    threads: 1
    resources:
        **gpu_resources("student"),
    params:
        hp=hparams("student"),
        augment=augment,
        flags=run_flags,
    shell:
        "lskd distill --task {wildcards.task} --data {input.data} --teacher {input.teacher} "
        "--arch {wildcards.sarch} --T {wildcards.T} --seed {wildcards.seed} "
        "--hp {params.hp:q} --augment {params.augment:q} --model-out {output.model} "
        "--metrics-out {output.metrics} --threads {threads} {params.flags} > {log} 2>&1"
