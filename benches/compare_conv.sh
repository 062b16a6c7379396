#!/usr/bin/env bash
# conv2d and the image flows' training step, flowzoo against PyTorch, on
# this machine, in one session: for each round and each thread count the
# two sides run one after the other (flowzoo's `cargo bench --bench conv`,
# then ../shared/peers/conv_torch.py; then the Glow and multi-scale RealNVP
# steps, `--flows` against image_flows_torch.py), so that both see the same
# load. Prints every JSON line, then per shape and thread count the median
# over the rounds of each side and the ratio flowzoo / PyTorch.
#
# conv_torch.py's SHAPES are the flows' shapes; the MNIST models' shapes
# that benches/conv.rs adds are timed by the same script with its SHAPES
# list replaced (the timing code is conv_torch.py's own).
#
# Needs a Python with torch (about 5 GB from PyPI):
#   python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy
# Usage: [THREADS="1 2"] [REPS=20] [BEFORE=bench-binary] benches/compare_conv.sh [python] [rounds]
#   (defaults: /tmp/torchenv/bin/python, 2 rounds). BEFORE names a conv bench
#   binary built from another commit (e.g. main's kernel: `cargo bench --bench
#   conv --no-run` there, then copy target/release/deps/conv-*); it runs in
#   the same rounds as a third side, "before".
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-/tmp/torchenv/bin/python}
ROUNDS=${2:-2}
read -r -a THREADS <<<"${THREADS:-1 2}"
PEERS=${PEERS:-../shared/peers}
REPS=${REPS:-20}
LOG=$(mktemp /tmp/compare_conv.XXXXXX)

BEFORE=${BEFORE:-}
cargo bench --no-run --bench conv >/dev/null 2>&1
ours() {
    cargo bench --bench conv -- "$@" 2>/dev/null | grep '^{'
    if [ -n "$BEFORE" ]; then
        "$BEFORE" "$@" 2>/dev/null | grep '^{' | sed 's/"side": "flowzoo"/"side": "before"/'
    fi
}

# conv_torch.py with the MNIST shapes of benches/conv.rs in place of its own.
torch_mnist() {
    "$PY" - "$PEERS/conv_torch.py" --threads "$1" --reps "$REPS" <<'EOF'
import re, sys
path = sys.argv[1]
sys.argv = [path] + sys.argv[2:]
source = open(path).read()
mnist = """SHAPES = [
    (64, 1, 64, 28, 3), (64, 4, 64, 14, 3), (64, 64, 64, 14, 3), (64, 64, 8, 14, 3),
    (64, 8, 64, 7, 3), (64, 64, 16, 7, 3), (64, 64, 64, 14, 1),
]"""
source, n = re.subn(r"SHAPES = \[.*?\n\]", mnist, source, count=1, flags=re.S)
assert n == 1, "conv_torch.py: no SHAPES list found"
exec(compile(source, path, "exec"), {"__name__": "__main__"})
EOF
}

echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$LOG"
for round in $(seq 1 "$ROUNDS"); do
    for t in "${THREADS[@]}"; do
        echo "# round $round, $t thread(s), $(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$LOG"
        ours --threads "$t" --reps "$REPS" | sed "s/^/conv $t /" | tee -a "$LOG"
        "$PY" "$PEERS/conv_torch.py" --threads "$t" --reps "$REPS" | sed "s/^/conv $t /" | tee -a "$LOG"
        torch_mnist "$t" | sed "s/^/conv $t /" | tee -a "$LOG"
        ours --flows --threads "$t" --reps "$REPS" | sed "s/^/flow $t /" | tee -a "$LOG"
        for model in glow realnvp-image; do
            "$PY" "$PEERS/image_flows_torch.py" --model "$model" --threads "$t" --steps "$REPS" |
                grep '^{' | sed "s/^/flow $t /" | tee -a "$LOG"
        done
    done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$LOG"

python3 - "$LOG" <<'EOF'
import json, statistics, sys
rows = {}  # (kind, threads, name, side) -> {metric: [values]}
order = []
for line in open(sys.argv[1]):
    if line.startswith("#"):
        continue
    kind, threads, text = line.split(" ", 2)
    d = json.loads(text)
    name = d.get("shape") or d.get("model")
    key = (kind, int(threads), name)
    if key not in order:
        order.append(key)
    slot = rows.setdefault(key + (d["side"],), {})
    for metric in ("fwd_ms", "bwd_ms", "step_ms_median"):
        if metric in d:
            slot.setdefault(metric, []).append(d[metric])

def med(key, side, metric):
    values = rows.get(key + (side,), {}).get(metric)
    return statistics.median(values) if values else None

def cell(v, digits):
    return f"{v:.{digits}f}" if v else "-"

def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "-"

before = any(k[3] == "before" for k in rows)
then = " (before → after)" if before else ""
print("\n| threads | shape | " + " | ".join(
    f"flowzoo {m} ms{then} | PyTorch {m} ms | {m} ratio{then}" for m in ("fwd", "bwd")) + " |")
print("|---:|---|" + "---:|" * 6)
for key in order:
    if key[0] != "conv":
        continue
    cells = []
    for metric in ("fwd_ms", "bwd_ms"):
        a, b, m = med(key, "flowzoo", metric), med(key, "torch", metric), med(key, "before", metric)
        first = f"{cell(m, 3)} → {cell(a, 3)}" if before else cell(a, 3)
        last = f"{ratio(m, b)} → {ratio(a, b)}" if before else ratio(a, b)
        cells += [first, cell(b, 3), last]
    print(f"| {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
print(f"\n| threads | training step, batch 256 | flowzoo ms{then} | PyTorch ms | ratio{then} |")
print("|---:|---|---:|---:|---:|")
for key in order:
    if key[0] != "flow":
        continue
    a, b, m = (med(key, side, "step_ms_median") for side in ("flowzoo", "torch", "before"))
    if before:
        print(f"| {key[1]} | {key[2]} | {cell(m, 2)} → {cell(a, 2)} | {cell(b, 2)} | {ratio(m, b)} → {ratio(a, b)} |")
    else:
        print(f"| {key[1]} | {key[2]} | {cell(a, 2)} | {cell(b, 2)} | {ratio(a, b)} |")
print(f"\nraw lines: {sys.argv[1]}")
EOF
