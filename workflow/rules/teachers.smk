rule train_teacher:
    input:
        data=dataset,
    output:
        model="results/<teacher_id>/model.pt",
        metrics=report(
            "results/<teacher_id>/metrics.json",
            caption="../report/metrics.rst",
            category="Runs",
            subcategory="Teachers",
            labels=run_labels("teacher"),
        ),
    log:
        "logs/<teacher_id>/train_teacher.log",
    benchmark:
        "benchmarks/<teacher_id>/train_teacher.tsv"
    conda:
        "../envs/lskd.yaml"
    threads: 1
    resources:
        **gpu_resources("teacher"),
    params:
        hp=hparams("teacher"),
        augment=augment,
        flags=run_flags,
    shell:
        "lskd train --task {wildcards.task} --data {input.data} --arch {wildcards.tarch} "
        "--alpha {wildcards.alpha} --seed {wildcards.tseed} --hp {params.hp:q} "
        "--augment {params.augment:q} --model-out {output.model} "
        "--metrics-out {output.metrics} --threads {threads} {params.flags} > {log} 2>&1"
