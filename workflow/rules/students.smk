rule distill_student:
    input:
        data=dataset,
        init=init_input("student"),
        teacher="results/<teacher_id>/model.pt",
    output:
        model="results/<student_id>/model.pt",
        metrics=run_report("results/<student_id>/metrics.json", "student"),
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
        args=run_args("student"),
    shell:
        "lskd distill {params.args} --data {input.data} --teacher {input.teacher} "
        "--model-out {output.model} --metrics-out {output.metrics} > {log} 2>&1"
