rule plot_projections:
    input:
        projections,
    output:
        png=figure_report("results/figures/penultimate_{task}_{tarch}-{panel}.png"),
        pdf="results/figures/penultimate_{task}_{tarch}-{panel}.pdf",
    log:
        "logs/figures/penultimate_{task}_{tarch}-{panel}.log",
    benchmark:
        "benchmarks/figures/penultimate_{task}_{tarch}-{panel}.tsv"
    conda:
        "../envs/lskd.yaml"
    params:
        args=figure_args,
    shell:
        "lskd figure {input} {params.args} --png {output.png} --pdf {output.pdf} > {log} 2>&1"
