#!/usr/bin/env bash
# The prepared GPU check (docs/performance.md#the-gpu-check): versions and the card's two
# ceilings, the tests marked gpu, and every GPU benchmark of bench/ (the ResNet-50 -> ResNet-18
# KD step at 224 px on real JPEGs vs the loader alone vs the synthetic ceiling, with an fp32
# teacher and with cuDNN's autotuner; torch.compile on and off; the fused sweep vs its ideal
# bound vs separate jobs, with the teacher's fp32 / bf16 / CUDA graph / compiled forward;
# loader vs training step; one CIFAR-100 epoch of resnet32x4 -> resnet8x4, a fused sweep of 5 T, through
# lskd prepare / import-weights / distill on generated archive files), each within a time budget:
# about 8 minutes on one H200. One CSV per part, summary.csv and gpu_check.log go to
# --out (default $OUT where it is set, else results/gpu_check). A failing part does not stop
# the others; the exit code is 1 when any part failed, timed out or found no time left.
#
#   bash scripts/gpu_check.sh                    # on the GPU machine
#   bash scripts/gpu_check.sh --dry-run          # anywhere: every part in a tiny CPU / skip mode
#   bash scripts/gpu_check.sh --only kd,fused    # some parts (env always, data when needed)
#
# Parts: env data tests kd compile fused cifar pipeline. Python is $PYTHON, else python3 (it must
# hold torch and torchvision); lskd runs from src/ through PYTHONPATH, nothing is installed,
# except wheels found under .whl/ (pip --no-index, into a temporary folder). --budget S
# (default 540) caps the whole check: each part gets at most what is left of it.
# LSKD_GPU_CHECK_DRY=1 is --dry-run.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DRY=${LSKD_GPU_CHECK_DRY:-0}
OUTDIR=${OUT:-$REPO/results/gpu_check}
ONLY=all
BUDGET=540
while (($#)); do
    case $1 in
    --dry-run) DRY=1 ;;
    --out) OUTDIR=${2:?--out needs a folder} && shift ;;
    --only) ONLY=${2:?--only needs parts, e.g. kd,fused} && shift ;;
    --budget) BUDGET=${2:?--budget needs seconds} && shift ;;
    -h | --help)
        sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0"
        exit 0
        ;;
    *)
        echo "gpu_check: unknown argument $1 (see --help)" >&2
        exit 2
        ;;
    esac
    shift
done
[[ $DRY == 1 ]] || DRY=0

PY=${PYTHON:-python3}
mkdir -p "$OUTDIR" && OUTDIR=$(cd "$OUTDIR" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lskd-gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
SUMMARY=$OUTDIR/summary.csv
LOG=$OUTDIR/gpu_check.log
rm -f "$LOG" "$OUTDIR"/{summary,env,tests,kd_throughput,fused_sweep,cifar_epoch,pipeline}.csv
echo "part,status,seconds,limit_s,csv,note" >"$SUMMARY"
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 TORCHINDUCTOR_CACHE_DIR=$WORK/inductor
FAILED=0
NO_GPU=0

say() { echo "$*" | tee -a "$LOG"; }

record() { # record PART STATUS SECONDS LIMIT CSV NOTE
    local note=${6//\"/\'}
    echo "$1,$2,$3,$4,$5,\"${note//$'\n'/; }\"" >>"$SUMMARY"
    say "-- $1: $2 (${3} s of ${4} s)${6:+: $6}"
}

wanted() {
    case $1 in
    env) return 0 ;;
    data) [[ $ONLY == all || ,$ONLY, =~ ,(data|kd|fused|compile|pipeline), ]] ;;
    *) [[ $ONLY == all || ,$ONLY, == *,$1,* ]] ;;
    esac
}

if compgen -G ".whl/*.whl" >/dev/null; then
    if ((DRY)); then
        say "would install: $(echo .whl/*.whl)"
    elif "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target "$WORK/site" .whl/*.whl 2>&1 | tee -a "$LOG"; then
        export PYTHONPATH="$WORK/site:$PYTHONPATH"
        record wheels ok 0 0 - "$(cd .whl && echo *.whl)"
    else
        record wheels failed 0 0 - "pip could not install .whl/*.whl"
        FAILED=1
    fi
fi

# --- what each part runs: @SOFT@ becomes the benchmark's own --seconds budget -------------
M=$WORK/jpegs/manifest.json
mapfile -t GPU_TESTS < <(grep -l 'pytest.mark.gpu' tests/test_*.py)
W=$(($(nproc) > 2 ? $(nproc) - 1 : 1)) # loader workers: a core each, one left for training
STEPS=30                                # timed steps per variant and round
REAL=60                                 # timed steps of the KD step on JPEG batches
# one epoch of 256-image batches holds each timed stream: its untimed warm-up (2 batches
# per worker + 1, + 5) and the longest window, + 4 (the held-out images)
N_JPEG=$(((2 * W + 1 + 5 + REAL + 4) * 256))
FUSED_LOADER=torchvision
"$PY" -c "import nvidia.dali" 2>/dev/null && FUSED_LOADER=dali
cuda=(--device cuda --workers "$W")
KD_VARIANTS=(synthetic load_only real fp32_teacher cudnn_benchmark)
declare -A LIMIT SOFT
part_commands() {
    cmd_env=("$PY" bench/gpu_check.py env --csv "$OUTDIR/env.csv" --require-cuda)
    cmd_data=("$PY" bench/gpu_check.py jpegs "$WORK/jpegs" --n "$N_JPEG" --side 256)
    cmd_tests=("$PY" -m pytest -m gpu -p no:cacheprovider -q -rA
        --junitxml "$WORK/junit.xml" "${GPU_TESTS[@]}")
    cmd_kd=("$PY" bench/kd_throughput.py "${cuda[@]}" --manifest "$M"
        --loaders torchvision dali --steps "$STEPS" --real-steps "$REAL" --warmup 5
        --rounds 5 --seconds @SOFT@ --variants "${KD_VARIANTS[@]}"
        --csv "$OUTDIR/kd_throughput.csv")
    cmd_fused=("$PY" bench/fused_sweep.py "${cuda[@]}" --manifest "$M"
        --loader "$FUSED_LOADER" --steps "$STEPS" --warmup 3 --rounds 5 --seconds @SOFT@
        --teacher-variants --compile --csv "$OUTDIR/fused_sweep.csv")
    cmd_compile=("$PY" bench/kd_throughput.py "${cuda[@]}" --manifest "$M"
        --variants synthetic compiled --steps "$STEPS" --warmup 5 --rounds 3
        --seconds @SOFT@ --csv "$OUTDIR/kd_throughput.csv")
    cmd_pipeline=("$PY" bench/pipeline.py "${cuda[@]}" --manifest "$M"
        --loaders torchvision dali --steps 20 --warmup 2 --rounds 3 --seconds @SOFT@
        --csv "$OUTDIR/pipeline.csv")
    # 20,000 generated images: the epoch's rate, scaled to the 45,000 of config/cifar100.yaml
    cmd_cifar=("$PY" bench/cifar_epoch.py --device cuda --threads "$W" --n-train 20000
        --n-test 2000 --work "$WORK/cifar" --csv "$OUTDIR/cifar_epoch.csv")
    # hard limit (timeout) and the benchmark's own budget, seconds
    LIMIT=([env]=60 [data]=60 [tests]=150 [kd]=100 [compile]=150 [fused]=200 [cifar]=120
        [pipeline]=80)
    SOFT=([kd]=60 [compile]=60 [fused]=150 [pipeline]=40)
}
dry_commands() { # the same parts, tiny and on the CPU: they parse, run and skip cleanly
    local cpu=(--device cpu --threads 1 --workers 0 --image-size 16 --batch-size 4
        --teacher resnet18 --steps 1 --warmup 1 --rounds 1 --seconds @SOFT@)
    cmd_env=("$PY" bench/gpu_check.py env --csv "$OUTDIR/env.csv")
    cmd_data=("$PY" bench/gpu_check.py jpegs "$WORK/jpegs" --n 16 --side 48 --distinct 4)
    cmd_kd=("$PY" bench/kd_throughput.py "${cpu[@]}" --student resnet18 --manifest "$M"
        --loaders torchvision dali --real-steps 2 --variants "${KD_VARIANTS[@]}"
        --csv "$OUTDIR/kd_throughput.csv")
    cmd_fused=("$PY" bench/fused_sweep.py "${cpu[@]}" --students resnet18 --manifest "$M"
        --temperatures 1 4 --teacher-variants --compile --compile-backend eager
        --csv "$OUTDIR/fused_sweep.csv")
    cmd_compile=("$PY" bench/kd_throughput.py "${cpu[@]}" --student resnet18
        --manifest "$M" --variants synthetic compiled --compile-backend eager
        --csv "$OUTDIR/kd_throughput.csv")
    cmd_pipeline=("$PY" bench/pipeline.py "${cpu[@]}" --student resnet18 --manifest "$M"
        --loaders torchvision dali --csv "$OUTDIR/pipeline.csv")
    cmd_cifar=("$PY" bench/cifar_epoch.py --device cpu --threads 1 --n-train 300 --n-test 100
        --teacher resnet8 --student resnet8 --T 1 4 --work "$WORK/cifar"
        --csv "$OUTDIR/cifar_epoch.csv")
    LIMIT=([env]=60 [data]=60 [tests]=120 [kd]=120 [fused]=120 [compile]=120 [cifar]=120
        [pipeline]=120)
    SOFT=([kd]=5 [fused]=5 [compile]=5 [pipeline]=5)
}
part_commands
declare -A ON_GPU
if ((DRY)); then
    for part in env data tests kd compile fused cifar pipeline; do
        declare -n cmd="cmd_$part"
        ON_GPU[$part]="$(printf '%q ' "${cmd[@]//@SOFT@/${SOFT[$part]:-}}")"
        ON_GPU[$part]=${ON_GPU[$part]% }
        unset -n cmd
    done
    dry_commands
fi

after_tests() { # tests.csv from pytest's JUnit XML; prints the counts
    [[ -s $WORK/junit.xml ]] &&
        "$PY" bench/gpu_check.py junit "$WORK/junit.xml" --csv "$OUTDIR/tests.csv"
}

run_part() { # run_part PART CSV: its command under timeout, its output to stdout and the log
    local part=$1 csv=$2 limit=${LIMIT[$1]} soft=${SOFT[$1]:-0}
    wanted "$part" || return 0
    local left=$((BUDGET - SECONDS))
    if ((NO_GPU)); then
        record "$part" skipped 0 "$limit" "$csv" "no GPU: see env"
        FAILED=1
        return 0
    fi
    if ((left < 15)); then
        record "$part" skipped 0 "$limit" "$csv" "no time left of the ${BUDGET} s budget"
        FAILED=1
        return 0
    fi
    if ((limit > left)); then
        soft=$((soft - limit + left))
        limit=$left
        ((soft < 5)) && soft=5
    fi
    declare -n spec="cmd_$part"
    local cmd=("${spec[@]//@SOFT@/$soft}")
    say "== $part (at most $limit s): ${cmd[*]}"
    [[ -n ${ON_GPU[$part]:-} ]] && say "   on the GPU: ${ON_GPU[$part]}"
    local start=$SECONDS rc=0
    timeout -k 10 "$limit" "${cmd[@]}" >"$WORK/$part.out" 2>&1 || rc=$?
    tee -a "$LOG" <"$WORK/$part.out"
    local took=$((SECONDS - start)) note=""
    note=$(grep -h -o '^[a-z]*: skipped (.*' "$WORK/$part.out" | head -3 | paste -sd ';')
    if declare -F "after_$part" >/dev/null; then
        note="$("after_$part" 2>&1 | tail -1)${note:+; $note}"
    fi
    if ((rc == 0)); then
        record "$part" ok "$took" "$limit" "$csv" "$note"
    elif ((rc == 124 || rc == 137)); then
        record "$part" timeout "$took" "$limit" "$csv" "stopped at $limit s${note:+; $note}"
        FAILED=1
    else
        local last
        last=$(grep -v '^\s*$' "$WORK/$part.out" | tail -1 | cut -c1-200)
        record "$part" failed "$took" "$limit" "$csv" "exit $rc: $last${note:+; $note}"
        FAILED=1
    fi
    [[ $part == env ]] && ((rc != 0)) && ((!DRY)) && NO_GPU=1
    return 0
}

say "gpu_check: $( ((DRY)) && echo dry run || echo GPU run), parts ${ONLY}, budget ${BUDGET} s"
say "gpu_check: python $PY, output $OUTDIR"
run_part env env.csv
[[ $FUSED_LOADER == dali ]] ||
    record dali skipped 0 0 - "nvidia.dali does not import here: no DALI rows; fused runs torchvision"
record nmt_kd_cost skipped 0 0 - "bench/nmt_kd_cost.py needs fairseq and a trained NMT teacher"
run_part data -
run_part tests tests.csv
run_part kd kd_throughput.csv
run_part compile kd_throughput.csv # before fused: its compiled teacher is then cached
run_part fused fused_sweep.csv
run_part cifar cifar_epoch.csv
run_part pipeline pipeline.csv

"$PY" bench/gpu_check.py show "$OUTDIR"/{env,tests,kd_throughput,fused_sweep,cifar_epoch,pipeline}.csv \
    "$SUMMARY" 2>&1 | tee -a "$LOG"
if ((FAILED)); then
    say "gpu_check: FAILED (see summary.csv above) after $SECONDS s"
    exit 1
fi
say "gpu_check: all parts ok after $SECONDS s"
