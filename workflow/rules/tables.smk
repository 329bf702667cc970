rule make_table:
    input:
        table_inputs,
    output:
        csv="results/tables/{task}_{tarch}-{sarch}.csv",
        md="results/tables/{task}_{tarch}-{sarch}.md",
        tex="results/tables/{task}_{tarch}-{sarch}.tex",
        html=table_report("results/tables/{task}_{tarch}-{sarch}.html"),
    log:
        "logs/tables/{task}_{tarch}-{sarch}.log",
    benchmark:
        "benchmarks/tables/{task}_{tarch}-{sarch}.tsv"
    conda:
        "../envs/lskd.yaml"
    shell:
        "lskd table {input} --csv {output.csv} --md {output.md} --tex {output.tex} "
        "--html {output.html} > {log} 2>&1"
