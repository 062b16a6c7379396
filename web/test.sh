#!/usr/bin/env bash
# The lab's tests, as CI runs them (after .ci/run has installed Chromium):
#  0. the lab crate's own tests (settings, streaming, the click panel);
#  1. the wasm build, run under Node, against the native build with the
#     AVX2/FMA paths turned off (MMTEST_FEATURE=none): the same summary and
#     byte-identical checkpoints, for every flow of the lab;
#  2. the page in headless Chromium: it trains, shows the native test NLL
#     and checkpoint hash, and its log-det panel agrees with finite
#     differences; a screenshot goes to web/tests/out/lab.png.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release -p flowzoo-web
web/build.sh
MMTEST_FEATURE=none CARGO_TARGET_DIR=target/portable \
  cargo build --release -p flowzoo-web --bin lab-reference
native=target/portable/release/lab-reference
wasm=web/dist/flowzoo_web.wasm
out=web/tests/out
mkdir -p "$out"

for settings in "data=moons flow=realnvp" "data=pinwheel flow=nice" \
  "data=8gaussians flow=glow" "data=checkerboard flow=maf" "data=circles flow=nsf" \
  "data=moons flow=nsf-ar" "data=ring flow=iaf"; do
  # shellcheck disable=SC2086 # the settings are words
  "$native" $settings steps=100 --checkpoint "$out/native.ckpt" >"$out/native.json"
  # shellcheck disable=SC2086
  node web/tests/node_run.mjs "$wasm" --checkpoint "$out/wasm.ckpt" $settings steps=100 \
    >"$out/wasm.json"
  cmp "$out/native.json" "$out/wasm.json"
  cmp "$out/native.ckpt" "$out/wasm.ckpt"
  echo "wasm = native, byte for byte: $settings steps=100: $(cat "$out/wasm.json")"
done

(cd web/tests && npm ci --no-audit --no-fund --silent)
settings="data=moons flow=realnvp steps=300"
# shellcheck disable=SC2086
"$native" $settings >"$out/browser-native.json"
# shellcheck disable=SC2086
node web/tests/browser.mjs --dist web/dist --expect "$out/browser-native.json" \
  --browser "$(command -v chromium)" --screenshot "$out/lab.png" $settings
