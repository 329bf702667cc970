#!/usr/bin/env bash
# Set up, then run every test except those needing a GPU: unit tests, the Snakemake DAG end to
# end on .test/config, --lint, snakefmt and ruff. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export PATH="$PWD/.venv/bin:$PATH"
status=0
python -m pytest -m "not gpu" "$@" || status=$?
if ((status == 5)); then
    echo "test: pytest collected no tests" >&2
fi
exit "$status"
