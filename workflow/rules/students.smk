# Students: one job per temperature (distill_student), or the fused sweep
# (distill_students: one job trains every T from one data stream and one teacher
# forward per batch). Both write the same files; run.fuse_temperatures picks the rule.
if RUN["fuse_temperatures"]:

    ruleorder: distill_students > distill_student

else:

    ruleorder: distill_student > distill_students


# The command of both rules (with several --T, --model-out and --metrics-out take one
# path per temperature).
DISTILL = (
    "lskd distill {params.args} --threads {threads} --gpus {resources.gpu} "
    "--data {input.data} --teacher {input.teacher} "
    "--model-out {output.model} --metrics-out {output.metrics} > {log} 2>&1"
)


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
    threads: job_threads("student")
    resources:
        **gpu_resources("student"),
    params:
        args=run_args("student"),
    shell:
        DISTILL


rule distill_students:
    input:
        data=dataset,
        init=init_input("student"),
        teacher="results/<teacher_id>/model.pt",
    output:
        model=sweep_outputs("model.pt"),
        metrics=sweep_reports(),
    log:
        "logs/<teacher_id>/students_{sarch}_{xfer}_s{seed}/distill_students.log",
    benchmark:
        "benchmarks/<teacher_id>/students_{sarch}_{xfer}_s{seed}/distill_students.tsv"
    conda:
        "../envs/lskd.yaml"
    threads: job_threads("student")
    resources:
        **gpu_resources("student"),
    params:
        args=run_args("students"),
    shell:
        DISTILL
