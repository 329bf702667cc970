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
        data=per_job(Grid.dataset),
        init=per_job(Grid.init_inputs, "student"),
        teacher="results/<teacher_id>/model.pt",
    output:
        model="results/<student_id>/model.pt",
        metrics=reported("results/<student_id>/metrics.json", "student"),
    log:
        "logs/<student_id>/distill_student.log",
    benchmark:
        "benchmarks/<student_id>/distill_student.tsv"
    conda:
        "../envs/lskd.yaml"
    threads: per_job(jobs.threads, "student")
    resources:
        **gpu_resources("student"),
    params:
        args=per_job(jobs.run_args, "student"),
    shell:
        DISTILL


rule distill_students:
    input:
        data=per_job(Grid.dataset),
        init=per_job(Grid.init_inputs, "student"),
        teacher="results/<teacher_id>/model.pt",
    output:
        model=GRID.sweep_outputs(paths.MODEL),
        metrics=sweep_reports("student", GRID.sweep_outputs(paths.METRICS)),
    log:
        "logs/<teacher_id>/students_{sarch}_{xfer}_{obj}_s{seed}/distill_students.log",
    benchmark:
        "benchmarks/<teacher_id>/students_{sarch}_{xfer}_{obj}_s{seed}/distill_students.tsv"
    conda:
        "../envs/lskd.yaml"
    threads: per_job(jobs.threads, "student")
    resources:
        **gpu_resources("student"),
    params:
        args=per_job(jobs.run_args, "students"),
    shell:
        DISTILL
