rule plot_projections:
    input:
        unpack(per_job(Grid.figure_inputs)),
    output:
        png=reported(f"{paths.PROJECTIONS}.png", "figure"),
        pdf=f"{paths.PROJECTIONS}.pdf",
    log:
        "logs/figures/penultimate_{task}_{tarch}-{panel}.log",
    benchmark:
        "benchmarks/figures/penultimate_{task}_{tarch}-{panel}.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=per_job(jobs.figure_args),
    shell:
        "lskd figure {input.projections} {params.args} --png {output.png} --pdf {output.pdf} > {log} 2>&1"


rule plot_curves:
    input:
        per_job(Grid.pair_runs, paths.METRICS),
    output:
        reported(paths.CURVES_FIGURE, "curves"),
    log:
        f"logs/figures/curves_{paths.PAIR}.log",
    benchmark:
        f"benchmarks/figures/curves_{paths.PAIR}.tsv"
    conda:
        "../envs/lskd.yaml"
    shell:
        "lskd curves {input} --png {output} > {log} 2>&1"
