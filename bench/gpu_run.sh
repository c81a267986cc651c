#!/usr/bin/env bash
# One prepared run of the benchmarks on a machine with a CUDA GPU (and, for comparison, its CPU).
#
#   bench/gpu_run.sh                      # on the GPU machine, from the repository root
#   PY=.venv/bin/python NO_WHEELS=1 DEVICES=cpu QUICK=1 bench/gpu_run.sh   # a dry run here
#
# Optional inputs beside the repository (ignored by git): .whl/ (Python 3.12 wheels the GPU
# machine lacks), .gpudata/fashion_mnist/ (IDX files; DATA_DIR), .gpusnap/tree.tar (a known-good
# tree to run instead of the working copy). Everything it measures is bundled into
# $OUT/gpu_results.tgz (logs and reports/*.json); the summary is printed last.
set -u
PY=${PY:-python3}
OUT=${OUT:-/tmp/gpu-out}
DEVICES=${DEVICES:-"cuda cpu"}
QUICK=${QUICK:-0}
ROOT=$(pwd)
WORK=/tmp/gpu-work
mkdir -p "$OUT" "$WORK"
T0=$(date +%s)

if [ -d .whl ] && [ -z "${NO_WHEELS:-}" ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH
fi
SRC=$ROOT
if [ -f .gpusnap/tree.tar ]; then
    rm -rf /tmp/snap && mkdir -p /tmp/snap && tar -xf .gpusnap/tree.tar -C /tmp/snap && SRC=/tmp/snap
fi
cd "$SRC" || exit 1
export PYTHONPATH=$SRC${PYTHONPATH:+:$PYTHONPATH}
export STATE_DIR=${STATE_DIR:-/tmp/gpu-state} LOG_LEVEL=warning PYTHONUNBUFFERED=1
export ARTIFACTS_DIR=$STATE_DIR/artifacts ARTIFACT_IMPORT_ROOTS=/tmp
[ -d "$ROOT/.gpudata" ] && export DATA_DIR=$ROOT/.gpudata
mkdir -p reports

if [ "$QUICK" = 1 ]; then REQ=200; BARE=200; REQ_BIG=100; else REQ=1000; BARE=2000; REQ_BIG=500; fi
TRAIN=${TRAIN_LIMIT:-10000}
BUDGET=${BUDGET:-500}  # seconds for the whole run: a step never starts past it

bundle() {  # what has been measured so far comes back even if the run is cut short
    cp reports/gpu_*.json "$WORK"/ 2>/dev/null
    tar -czf "$OUT/gpu_results.tgz" -C "$WORK" .
}

step() {  # step NAME SECONDS COMMAND...: run within its limit and the run's budget, log it
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - ($(date +%s) - T0)))
    if [ $left -lt 30 ]; then echo "=== $name: skipped (budget)"; return; fi
    [ $limit -gt $left ] && limit=$left
    local start=$(date +%s)
    # Its own process group, so servers a timed-out benchmark leaves behind are stopped with it.
    setsid timeout "$limit" "$@" >"$WORK/$name.log" 2>&1 &
    local pid=$!
    wait $pid
    local rc=$?
    kill -- -$pid 2>/dev/null
    echo "=== $name: rc=$rc in $(($(date +%s) - start))s (t=$(($(date +%s) - T0))s)"
    [ $rc = 0 ] || tail -n 6 "$WORK/$name.log"
    grep -E "^(ours|baseline) x|met;|images/s" "$WORK/$name.log" | tail -n 24
    bundle
}

{
    nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
    nproc
    "$PY" -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0))"
} >"$WORK/info.log" 2>&1
cat "$WORK/info.log"

step unit_device 90 "$PY" -m pytest -q -p no:cacheprovider tests/unit/test_ml_device.py tests/unit/test_ml_batcher.py
step migrate 90 "$PY" -m cli migrate
first=${DEVICES%% *}
for dev in $DEVICES; do
    export DEVICE=$dev
    # The first device trains (on it) and promotes a short mnist_cnn if there is none. On the
    # CPU the N-process runs are the API_WORKERS scaling study (2, 4, 8 processes).
    if [ "$dev" = cpu ]; then W=${SCALING_WORKERS:-2 4 8}; C="1 32 64"; else W=8; C="1 8 32"; fi
    step "predict_mnist_$dev" 200 "$PY" -m bench.bench_predict --arch mnist_cnn --train_limit $TRAIN \
        --requests $REQ --bare_iters $BARE --no_v2 --workers $W --concurrency $C \
        --out "reports/gpu_bench_predict_mnist_cnn_$dev.json"
done
export DEVICE=$first
step "predict_resnet18_$first" 150 "$PY" -m bench.bench_predict --arch resnet18 --train_limit $TRAIN \
    --requests $REQ_BIG --bare_iters 300 --no_v2 --workers 8 \
    --out "reports/gpu_bench_predict_resnet18_$first.json"
for dev in $DEVICES; do
    export DEVICE=$dev
    step "batch_mnist_$dev" 90 "$PY" -m bench.bench_batch --arch mnist_cnn --train_limit $TRAIN \
        --out "reports/gpu_bench_batch_mnist_cnn_$dev.json"
done
for dev in ${DEVICES#* }; do
    [ "$dev" = "$first" ] && continue
    export DEVICE=$dev
    step "predict_resnet18_$dev" 150 "$PY" -m bench.bench_predict --arch resnet18 --train_limit $TRAIN \
        --requests $REQ_BIG --bare_iters 300 --no_v2 --workers 8 \
        --out "reports/gpu_bench_predict_resnet18_$dev.json"
done
for dev in $DEVICES; do
    export DEVICE=$dev
    step "batch_resnet18_$dev" 90 "$PY" -m bench.bench_batch --arch resnet18 --train_limit $TRAIN \
        --out "reports/gpu_bench_batch_resnet18_$dev.json"
done
export DEVICE=$first
step "profile_$first" 60 "$PY" -m bench.profile_predict --seconds 4 \
    --out "reports/gpu_profile_predict_$first.json"

bundle
"$PY" -m bench.gpu_summary "$WORK" >"$WORK/summary.txt" 2>&1
bundle
cp "$WORK/summary.txt" "$OUT/" 2>/dev/null
cat "$WORK/summary.txt"
"$PY" -m cli down >/dev/null 2>&1
echo "total $(($(date +%s) - T0))s"
