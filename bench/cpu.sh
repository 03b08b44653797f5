#!/usr/bin/env bash
# cpu.sh - the CPU engine benchmarks, each beside PyTorch (float32, same machine, same run):
# DiT forward (tiny and 1.3B shape, 320 tokens). Prints the C table, then a ratio table last.
# Usage: bench/cpu.sh [threads]   (needs torch in python3 for the PyTorch column)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-0}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target bench_dit_cpu -j"$(nproc)" >/dev/null
out=$(build/bench/bench_dit_cpu 2 "$THREADS")
echo "$out"
torch_out=""
if python3 -c "import torch" 2>/dev/null; then
    torch_out=$(python3 bench/torch_dit_cpu.py 2 "$THREADS")
fi
echo
echo "| config | C engine s/forward | PyTorch f32 s/forward | PyTorch / C |"
echo "| ------ | ------------------ | --------------------- | ----------- |"
for cfg in tiny 1.3B; do
    c=$(echo "$out" | awk -F'|' -v n="$cfg" '$2 ~ "^ *"n" *$" {gsub(/ /,"",$10); print $10}')
    t=$(echo "$torch_out" | awk -v n="$cfg" '$2 == n {print $3}')
    if [ -n "$t" ] && [ -n "$c" ]; then
        r=$(awk -v a="$t" -v b="$c" 'BEGIN {printf "%.2f", a / b}')
    else
        r="n/a"; t=${t:-n/a}
    fi
    echo "| $cfg | $c | $t | $r |"
done
