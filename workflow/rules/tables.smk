rule make_table:
    input:
        table_inputs,
    output:
        csv="results/tables/{task}_{tarch}-{sarch}_{xfer}.csv",
        md="results/tables/{task}_{tarch}-{sarch}_{xfer}.md",
        tex="results/tables/{task}_{tarch}-{sarch}_{xfer}.tex",
        html=table_report("results/tables/{task}_{tarch}-{sarch}_{xfer}.html"),
    log:
        "logs/tables/{task}_{tarch}-{sarch}_{xfer}.log",
    benchmark:
        "benchmarks/tables/{task}_{tarch}-{sarch}_{xfer}.tsv"
    conda:
        "../envs/lskd.yaml"
    shell:
        "lskd table {input} --csv {output.csv} --md {output.md} --tex {output.tex} "
        "--html {output.html} > {log} 2>&1"


rule check_claims:
    input:
        table_inputs,
    output:
        csv="results/tables/{task}_{tarch}-{sarch}_{xfer}_claims.csv",
        md="results/tables/{task}_{tarch}-{sarch}_{xfer}_claims.md",
        html=claims_report("results/tables/{task}_{tarch}-{sarch}_{xfer}_claims.html"),
    log:
        "logs/tables/{task}_{tarch}-{sarch}_{xfer}_claims.log",
    benchmark:
        "benchmarks/tables/{task}_{tarch}-{sarch}_{xfer}_claims.tsv"
    conda:
        "../envs/lskd.yaml"
    shell:
        "lskd claims {input} --csv {output.csv} --md {output.md} --html {output.html} "
        "> {log} 2>&1"


rule make_diffusion_table:
    input:
        metrics=diffusion_runs("metrics.json"),
        diffusion=diffusion_runs("diffusion.json"),
    output:
        csv=f"results/tables/{PAIR}_diffusion.csv",
        html=diffusion_report(f"results/tables/{PAIR}_diffusion.html"),
        png=diffusion_report(f"results/figures/diffusion_{PAIR}.png"),
    log:
        f"logs/tables/{PAIR}_diffusion.log",
    benchmark:
        f"benchmarks/tables/{PAIR}_diffusion.tsv"
    conda:
        "../envs/lskd.yaml"
    shell:
        "lskd diffusion-table --metrics {input.metrics} --diffusion {input.diffusion} "
        "--csv {output.csv} --html {output.html} --png {output.png} > {log} 2>&1"


rule delta:
    input:
        metrics=table_inputs,
        diffusion=delta_diffusion,
    output:
        delta_outputs(),
    log:
        f"logs/tables/{PAIR}_delta.log",
    benchmark:
        f"benchmarks/tables/{PAIR}_delta.tsv"
    conda:
        "../envs/lskd.yaml"
    shell:
        "lskd delta {input.metrics} --diffusion {input.diffusion} --out {output} "
        "> {log} 2>&1"


rule delta_transfer:
    input:
        transfer_inputs,
    output:
        csv="results/tables/{task}_{tarch}-{sarch}_transfer.csv",
        md="results/tables/{task}_{tarch}-{sarch}_transfer.md",
        tex="results/tables/{task}_{tarch}-{sarch}_transfer.tex",
        html=transfer_report("results/tables/{task}_{tarch}-{sarch}_transfer.html"),
        png=transfer_report("results/figures/delta_{task}_{tarch}-{sarch}_transfer.png"),
    log:
        "logs/tables/{task}_{tarch}-{sarch}_transfer.log",
    benchmark:
        "benchmarks/tables/{task}_{tarch}-{sarch}_transfer.tsv"
    conda:
        "../envs/lskd.yaml"
    shell:
        "lskd delta-transfer {input} --out {output} > {log} 2>&1"
