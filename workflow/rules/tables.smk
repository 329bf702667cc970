rule make_table:
    input:
        per_job(Grid.pair_runs, paths.METRICS),
    output:
        csv=f"{paths.TABLE}.csv",
        md=f"{paths.TABLE}.md",
        tex=f"{paths.TABLE}.tex",
        html=reported(f"{paths.TABLE}.html", "table"),
    log:
        f"logs/tables/{paths.PAIR}.log",
    benchmark:
        f"benchmarks/tables/{paths.PAIR}.tsv"
    conda:
        "../envs/lskd.yaml"
    shell:
        "lskd table {input} --csv {output.csv} --md {output.md} --tex {output.tex} "
        "--html {output.html} > {log} 2>&1"


rule check_claims:
    input:
        per_job(Grid.pair_runs, paths.METRICS),
    output:
        csv=f"{paths.CLAIMS}.csv",
        md=f"{paths.CLAIMS}.md",
        html=reported(f"{paths.CLAIMS}.html", "claims"),
    log:
        f"logs/tables/{paths.PAIR}_claims.log",
    benchmark:
        f"benchmarks/tables/{paths.PAIR}_claims.tsv"
    conda:
        "../envs/lskd.yaml"
    shell:
        "lskd claims {input} --csv {output.csv} --md {output.md} --html {output.html} "
        "> {log} 2>&1"


rule make_diffusion_table:
    input:
        metrics=per_job(Grid.pair_runs, paths.METRICS),
        diffusion=per_job(Grid.pair_runs, paths.DIFFUSION),
    output:
        csv=f"{paths.DIFFUSION_TABLE}.csv",
        html=reported(f"{paths.DIFFUSION_TABLE}.html", "diffusion"),
        png=reported(paths.DIFFUSION_FIGURE, "diffusion"),
    log:
        f"logs/tables/{paths.PAIR}_diffusion.log",
    benchmark:
        f"benchmarks/tables/{paths.PAIR}_diffusion.tsv"
    conda:
        "../envs/lskd.yaml"
    shell:
        "lskd diffusion-table --metrics {input.metrics} --diffusion {input.diffusion} "
        "--csv {output.csv} --html {output.html} --png {output.png} > {log} 2>&1"


rule delta:
    input:
        metrics=per_job(Grid.pair_runs, paths.METRICS),
        diffusion=per_job(Grid.delta_diffusion),
    output:
        **delta_outputs(),
    log:
        f"logs/tables/{paths.PAIR}_delta.log",
    benchmark:
        f"benchmarks/tables/{paths.PAIR}_delta.tsv"
    conda:
        "../envs/lskd.yaml"
    shell:
        f"lskd delta {{input.metrics}} --diffusion {{input.diffusion}} {TABLE_FILES} "
        "--summary-md {output.summary_md} --summary-html {output.summary_html} "
        "--headline-html {output.headline_html} --png {output.png} > {log} 2>&1"


rule delta_transfer:
    input:
        per_job(Grid.transfer_runs),
    output:
        csv=f"{paths.TRANSFER}.csv",
        md=f"{paths.TRANSFER}.md",
        tex=f"{paths.TRANSFER}.tex",
        html=reported(f"{paths.TRANSFER}.html", "transfer"),
        png=reported(paths.TRANSFER_FIGURE, "transfer"),
    log:
        f"logs/tables/{paths.ARCH_PAIR}_transfer.log",
    benchmark:
        f"benchmarks/tables/{paths.ARCH_PAIR}_transfer.tsv"
    conda:
        "../envs/lskd.yaml"
    shell:
        f"lskd delta-transfer {{input}} {TABLE_FILES} --png {{output.png}} > {{log}} 2>&1"
