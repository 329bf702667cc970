#!/usr/bin/env bash
# One-time set-up on Debian 12 / Python 3.11: the Debian packages lskd reads its embedded data
# from, and a virtual environment in .venv with lskd and its pinned stack (constraints.txt).
# Safe to rerun: it installs only what is missing and skips pip when nothing changed.
#
#   bash scripts/setup.sh          # what the demo needs (scripts/demo.sh)
#   bash scripts/setup.sh --test   # and what the tests need (scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
    "") for_tests=false ;;
    --test) for_tests=true ;;
    *) echo "setup: unknown argument ${1} (expected nothing or --test)" >&2; exit 2 ;;
esac

# The demo: dataset-fashion-mnist (its data). The tests add chromium
# (tests/test_report_browser.py) and the local SLURM cluster of scripts/slurm/up.sh
# (tests/test_slurm.py), which runs its own daemons on their own sockets and ports,
# beside any the packages' services start.
APT_PACKAGES=(dataset-fashion-mnist)
TEST_PACKAGES=(chromium slurm-wlm slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
if $for_tests; then
    APT_PACKAGES+=("${TEST_PACKAGES[@]}")
fi
# pip extras: dev (pytest, ruff, snakefmt) and dali (the optional GPU loader, tested on
# CPU) for the tests only.
EXTRAS=$($for_tests && echo "[dev,dali]" || echo "")
PYTHON=${PYTHON:-python3}

sudo=""
[[ $(id -u) -eq 0 ]] || sudo=sudo
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup: apt-get install ${missing[*]}"
    $sudo apt-get install -y --no-install-recommends "${missing[@]}" ||
        { $sudo apt-get update -qq && $sudo apt-get install -y --no-install-recommends "${missing[@]}"; }
fi

# NMT demo corpus: LibreOffice's German and Russian UI translations (MPL-2.0). Only the
# packages' files are extracted into resources/raw/libreoffice (git-ignored): installing
# them would pull in all of LibreOffice. apt-get download needs no root.
LO_ROOT=resources/raw/libreoffice
for lang in de ru; do
    if ! compgen -G "$LO_ROOT/usr/lib/libreoffice/program/resource/$lang/LC_MESSAGES/*.mo" >/dev/null; then
        echo "setup: extracting Debian's libreoffice-l10n-$lang into $LO_ROOT"
        tmp=$(mktemp -d)
        (cd "$tmp" && apt-get download "libreoffice-l10n-$lang" >/dev/null 2>&1) ||
            { $sudo apt-get update -qq && (cd "$tmp" && apt-get download "libreoffice-l10n-$lang" >/dev/null); } ||
            { echo "setup: apt-get download libreoffice-l10n-$lang failed" >&2; rm -rf "$tmp"; exit 1; }
        mkdir -p "$LO_ROOT"
        dpkg-deb -x "$tmp"/libreoffice-l10n-"$lang"_*.deb "$LO_ROOT"
        rm -rf "$tmp"
    fi
done

"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' ||
    { echo "setup: Python >= 3.11 required ($PYTHON is $("$PYTHON" --version))" >&2; exit 1; }
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
stamp=$( (cat pyproject.toml constraints.txt; echo "$EXTRAS") | sha256sum | cut -d' ' -f1)
stamp_file=".venv/.setup-stamp$($for_tests && echo -test || true)"
if [[ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp" ]]; then
    echo "setup: pip install -e .$EXTRAS into .venv (pinned by constraints.txt)"
    .venv/bin/pip install -q -c constraints.txt -e ".$EXTRAS"
    echo "$stamp" > "$stamp_file"
fi
# The [nmt] extra: fairseq compiles C++/Cython extensions against the installed torch
# (~4 min); its build needs cython and wheel first and no build isolation (which would
# fetch another torch into the build environment).
nmt_missing() {
    .venv/bin/python - <<'PY'
import importlib.metadata as m, sys
for dist in ("fairseq-fixed", "sentencepiece", "sacrebleu"):
    try:
        m.version(dist)
    except m.PackageNotFoundError:
        sys.exit(0)
sys.exit(1)
PY
}
if nmt_missing; then
    echo "setup: pip install the [nmt] extra: fairseq-fixed (compiles, ~4 min), sentencepiece"
    .venv/bin/pip install -q -c constraints.txt cython wheel
    .venv/bin/pip install -q --no-build-isolation -c constraints.txt fairseq-fixed sentencepiece sacrebleu
fi
profile="${XDG_CONFIG_HOME:-$HOME/.config}/snakemake/slurm"
# Makes `snakemake --profile slurm` find profiles/slurm; a link left by a deleted clone is
# replaced, anything else the user put there is kept.
if [[ ! -e "$profile" ]]; then
    mkdir -p "$(dirname "$profile")" && ln -sfn "$PWD/profiles/slurm" "$profile"
    echo "setup: linked $profile -> profiles/slurm"
fi
echo "setup: done (activate with: source .venv/bin/activate)"
