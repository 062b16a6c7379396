#!/usr/bin/env bash
# Builds the lab: the library compiled to WebAssembly, and the page, into
# web/dist (static files any static server can host). Then, for example:
#   python3 -m http.server -d web/dist 8000   # and open http://localhost:8000
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
cargo build --release -p flowzoo-web --lib --target wasm32-unknown-unknown
rm -rf web/dist.tmp
mkdir -p web/dist.tmp
cp web/static/index.html web/static/lab.js web/static/lab.css web/static/worker.js web/dist.tmp/
cp target/wasm32-unknown-unknown/release/flowzoo_web.wasm web/dist.tmp/
rm -rf web/dist
mv web/dist.tmp web/dist
echo "web/dist: $(du -sh web/dist | cut -f1); serve it, e.g. python3 -m http.server -d web/dist 8000"
