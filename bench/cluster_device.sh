#!/usr/bin/env bash
# bench/cluster_device.sh - issue 7's proof on a machine of two GPUs (device kind nvidia-h200-x2),
# in one call:
#   1. the timing table: bench/parallel_device.sh bench (bench_parallel, one process per GPU
#      through NCCL, 1.3B- and 14B-shaped weights at 480p/81 frames, speedup per mode against
#      one GPU), built engine-only;
#   2. the failure scenarios with the real service, when this tree can build `auteur` there (the
#      device image has no libmicrohttpd, SQLite or FFmpeg: carry them in .deps, with their
#      pkg-config files in .deps/lib/pkgconfig): tests/e2e/test_cluster.py's kill -9, link cut,
#      SIGSTOP, cancel and SIGTERM scenarios with rank 0 on GPU 0 and the worker on GPU 1,
#      joined through NCCL; otherwise it says what is missing and skips them.
# NCCL is kept on the network path as between two hosts (NCCL_P2P_DISABLE=1,
# NCCL_SHM_DISABLE=1) and NVLink multicast off (NCCL_NVLS_ENABLE=0). The link cut cuts the
# control connection (a relay in the test): NCCL's own sockets stay up, so what it shows is that
# the loss of the control channel aborts the comm and the job finishes on rank 0.
# Logs go to $OUT (the device tool brings that folder back) or /tmp/auteur-cluster.
# Usage: bench/cluster_device.sh [bench_parallel options]
set -u -o pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-/tmp/auteur-cluster}
BUILD_DIR=${BUILD_DIR:-build-cluster-dev}
mkdir -p "$OUT"
export NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1 NCCL_NVLS_ENABLE=0
step() { echo "== $* ($(date +%T))"; }
status=0

step "timing: bench/parallel_device.sh bench $*"
OUT=$OUT/parallel bench/parallel_device.sh bench "$@" >"$OUT/parallel.log" 2>&1 || status=1
grep -E "^(== |#|ERROR)" "$OUT/parallel.log"

step "failure scenarios: auteur serve + auteur worker on two GPUs"
[ -d .deps/lib/pkgconfig ] && export PKG_CONFIG_PATH=$PWD/.deps/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
[ -d .deps/lib ] && export LD_LIBRARY_PATH=$PWD/.deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
missing=""
for m in libmicrohttpd sqlite3 libavcodec libavformat libswscale; do
    pkg-config --exists "$m" 2>/dev/null || missing="$missing $m"
done
if [ -n "$missing" ]; then
    echo "skipped: the service cannot be built here (missing:$missing); carry them in .deps"
elif ! { cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release && cmake --build "$BUILD_DIR" --target auteur -j "$(nproc)"; } \
    >"$OUT/build.log" 2>&1; then
    grep -E "error|Error" "$OUT/build.log" | head -30
    status=1
else
    grep -E "NCCL|CUDA:" "$OUT/build.log"
    AUTEUR_BIN=$PWD/$BUILD_DIR/auteur AUTEUR_SOURCE_DIR=$PWD AUTEUR_MODEL=$PWD/models/tiny-random \
        AUTEUR_E2E_CLUSTER_DEVICE=cuda PYTHONUNBUFFERED=1 timeout 400 python3 - >"$OUT/scenarios.log" 2>&1 <<'EOF'
import sys
sys.path.insert(0, "tests/e2e")
import test_cluster
from harness import run_tests
names = ("test_kill9_worker_mid_job_then_rejoin", "test_link_cut_mid_job_then_rejoin",
         "test_cancel_and_sigterm_mid_job", "test_sigstop_detected_within_heartbeat_timeout")
run_tests({n: getattr(test_cluster, n) for n in names})
EOF
    rc=$?
    grep -E "^(ok|FAIL) " "$OUT/scenarios.log"
    echo "scenarios: rc $rc"
    [ $rc -ne 0 ] && status=1
fi

step "table (bench_parallel, one step per mode against one GPU)"
sed -n '/^model /,$p' "$OUT/parallel/bench.log" 2>/dev/null | grep . || echo "(no table: see $OUT/parallel.log)"
exit $status
