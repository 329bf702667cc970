#!/usr/bin/env bash
# Set up, then run the whole study on the embedded demo config (CPU, minutes) and build the
# report. Extra arguments go to snakemake (e.g. --configfile, a target file).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
snakemake --cores all "$@"
snakemake --report results/report.html "$@"
echo "demo: tables in results/tables/, figures in results/figures/, report: results/report.html"
