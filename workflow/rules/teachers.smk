rule train_teacher:
    input:
        data=dataset,
        init=init_input("teacher"),
    output:
        model="results/<teacher_id>/model.pt",
        metrics=run_report("results/<teacher_id>/metrics.json", "teacher"),
    log:
        "logs/<teacher_id>/train_teacher.log",
    benchmark:
        "benchmarks/<teacher_id>/train_teacher.tsv"
    conda:
        "../envs/lskd.yaml"
    threads: job_threads("teacher")
    resources:
        **gpu_resources("teacher"),
    params:
        args=run_args("teacher"),
    shell:
        "lskd train {params.args} --threads {threads} --gpus {resources.gpu} "
        "--data {input.data} --model-out {output.model} "
        "--metrics-out {output.metrics} > {log} 2>&1"
