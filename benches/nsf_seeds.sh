#!/usr/bin/env bash
# flowzoo's side of the spline flows' comparison with zuko over seeds
# (docs/benchmarks/splines.md): test NLL (nats) of `nsf` and `nsf-ar` on the
# four 2-D sets, 1500 steps, seeds 0..SEEDS-1, one line per run, then the
# mean and sample standard deviation per (flow, set). zuko's side:
#   for s in 0 1 2 ...; do python benches/nsf_zuko.py --seed $s --threads 1; done
# Usage: benches/nsf_seeds.sh [seeds] [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-8}
STEPS=${2:-1500}
cargo build --release --quiet
out=$(mktemp -d)
for flow in nsf-ar nsf; do
    for data in checkerboard moons pinwheel 8gaussians; do
        for seed in $(seq 0 $((SEEDS - 1))); do
            nll=$(target/release/flowzoo train --data "$data" --flow "$flow" --steps "$STEPS" \
                --seed "$seed" --quiet --out "$out/run" | grep -o 'test NLL [-0-9.]*' | cut -d' ' -f3)
            echo "$flow $data seed $seed: test NLL $nll"
        done
    done
done | tee "$out/all.txt"
awk '{k=$1" "$2; n[k]++; s[k]+=$NF; q[k]+=$NF*$NF}
     END {for (k in n) {m=s[k]/n[k]; printf "%s: mean %.4f, sd %.4f over %d seeds\n", k, m, sqrt((q[k]-n[k]*m*m)/(n[k]-1)), n[k]}}' \
    "$out/all.txt" | sort
rm -r "$out"
