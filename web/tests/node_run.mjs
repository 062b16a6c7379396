// Runs the lab's wasm module under Node, as the page's worker does, and
// prints the run's summary JSON on one line (the same line lab-reference
// prints natively). Usage:
//   node web/tests/node_run.mjs WASM_FILE [--checkpoint FILE] key=value ...
import { readFileSync, writeFileSync } from "node:fs";

const args = process.argv.slice(2);
const wasmPath = args.shift();
let checkpointPath = null;
const settings = [];
while (args.length) {
  const arg = args.shift();
  if (arg === "--checkpoint") checkpointPath = args.shift();
  else settings.push(arg);
}

let memory = null;
let done = null;
let error = null;
const decoder = new TextDecoder();
const imports = {
  env: {
    emit(tag, ptr, len) {
      const bytes = new Uint8Array(memory.buffer, ptr, len);
      if (tag === 8) done = decoder.decode(bytes);
      if (tag === 9) error = decoder.decode(bytes);
    },
  },
};
const { instance } = await WebAssembly.instantiate(readFileSync(wasmPath), imports);
memory = instance.exports.memory;
const text = new TextEncoder().encode(settings.join(" "));
const ptr = instance.exports.lab_alloc(text.length);
new Uint8Array(memory.buffer, ptr, text.length).set(text);
const started = performance.now();
const status = instance.exports.lab_train(ptr, text.length);
const seconds = (performance.now() - started) / 1000;
if (status !== 0) {
  console.error(`node_run: ${error}`);
  process.exit(1);
}
if (checkpointPath) {
  const p = instance.exports.lab_checkpoint_ptr();
  const n = instance.exports.lab_checkpoint_len();
  writeFileSync(checkpointPath, new Uint8Array(memory.buffer, p, n));
}
console.log(done);
console.error(`node_run: ${seconds.toFixed(2)} s`);
