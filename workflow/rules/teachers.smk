rule train_teacher:
    input:
        data=per_job(Grid.dataset),
        init=per_job(Grid.init_inputs, "teacher"),
    output:
        model="results/<teacher_id>/model.pt",
        metrics=reported("results/<teacher_id>/metrics.json", "teacher"),
    log:
        "logs/<teacher_id>/train_teacher.log",
    benchmark:
        "benchmarks/<teacher_id>/train_teacher.tsv"
    conda:
        "../envs/lskd.yaml"
    threads: per_job(jobs.threads, "teacher")
    resources:
        **gpu_resources("teacher"),
    params:
        args=per_job(jobs.run_args, "teacher"),
    shell:
        "lskd train {params.args} --threads {threads} --gpus {resources.gpu} "
        "--data {input.data} --model-out {output.model} "
        "--metrics-out {output.metrics} > {log} 2>&1"
