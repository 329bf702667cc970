rule plot_student_projections:
    input:
        student_projections,
    output:
        png=report(
            "results/figures/penultimate_{task}_{tarch}-{sarch}.png",
            caption="../report/figure_students.rst",
            category="Figures",
            subcategory="{task}",
            labels={"figure": "students", "pair": "{tarch} → {sarch}"},
        ),
        pdf="results/figures/penultimate_{task}_{tarch}-{sarch}.pdf",
    log:
        "logs/figures/penultimate_{task}_{tarch}-{sarch}.log",
    benchmark:
        "benchmarks/figures/penultimate_{task}_{tarch}-{sarch}.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=figure_args("students"),
    shell:
        "lskd figure {input} {params.args} --png {output.png} --pdf {output.pdf} > {log} 2>&1"


rule plot_teacher_projections:
    input:
        teacher_projections,
    output:
        png=report(
            "results/figures/penultimate_{task}_{tarch}_teachers.png",
            caption="../report/figure_teachers.rst",
            category="Figures",
            subcategory="{task}",
            labels={"figure": "teachers", "pair": "{tarch}"},
        ),
        pdf="results/figures/penultimate_{task}_{tarch}_teachers.pdf",
    log:
        "logs/figures/penultimate_{task}_{tarch}_teachers.log",
    benchmark:
        "benchmarks/figures/penultimate_{task}_{tarch}_teachers.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=figure_args("teachers"),
    shell:
        "lskd figure {input} {params.args} --png {output.png} --pdf {output.pdf} > {log} 2>&1"
