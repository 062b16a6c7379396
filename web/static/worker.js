// The lab's Web Worker: loads the library compiled to WebAssembly and runs
// one training at a time, posting to the page what the library emits
// (see web/src/lib.rs, `Tag`, for the messages and their layouts).

"use strict";

const TAG = {
  STEP: 1, FRAME_BEGIN: 2, DENSITY: 3, SAMPLES: 4, STAGE_NAME: 5,
  STAGE_POINTS: 6, FRAME_END: 7, DONE: 8, ERROR: 9, DATA: 10, TARGET: 11,
  LOG_DET: 12,
};

let exports = null;
let frame = null;
let stageName = null;
let started = 0;
const decoder = new TextDecoder();

/** Copies `len` bytes at `ptr` out of the module's memory. */
function bytes(ptr, len) {
  return new Uint8Array(exports.memory.buffer, ptr, len).slice();
}
function f32(ptr, len) {
  return new Float32Array(bytes(ptr, len).buffer);
}
function f64(ptr, len) {
  return new Float64Array(bytes(ptr, len).buffer);
}

/** The library's messages, as they come. */
function emit(tag, ptr, len) {
  switch (tag) {
    case TAG.STEP: {
      const [step, loss] = f64(ptr, len);
      postMessage({ type: "step", step, loss, ms: performance.now() - started });
      break;
    }
    case TAG.FRAME_BEGIN: {
      const h = f64(ptr, len);
      frame = {
        type: "frame", step: h[0], loss: h[1], resolution: h[2],
        box: [h[3], h[4], h[5], h[6]], stages: [],
      };
      break;
    }
    case TAG.DENSITY: frame.density = f32(ptr, len); break;
    case TAG.SAMPLES: frame.samples = f32(ptr, len); break;
    case TAG.STAGE_NAME: stageName = decoder.decode(bytes(ptr, len)); break;
    case TAG.STAGE_POINTS: frame.stages.push({ name: stageName, points: f32(ptr, len) }); break;
    case TAG.FRAME_END:
      frame.ms = performance.now() - started;
      postMessage(frame);
      frame = null;
      break;
    case TAG.DATA: postMessage({ type: "data", points: f32(ptr, len) }); break;
    case TAG.TARGET: {
      const raw = bytes(ptr, len);
      const h = new Float64Array(raw.buffer, 0, 7);
      postMessage({
        type: "target", resolution: h[2], box: [h[3], h[4], h[5], h[6]],
        density: new Float32Array(raw.buffer, 56),
      });
      break;
    }
    case TAG.DONE:
      postMessage({
        type: "done", summary: JSON.parse(decoder.decode(bytes(ptr, len))),
        seconds: (performance.now() - started) / 1000,
      });
      break;
    case TAG.ERROR: postMessage({ type: "error", message: decoder.decode(bytes(ptr, len)) }); break;
    case TAG.LOG_DET: postMessage({ type: "logdet", check: JSON.parse(decoder.decode(bytes(ptr, len))) }); break;
  }
}

let wasmBytes = null;

/** Instantiates the module afresh (after a trap it cannot be used again). */
function instantiate() {
  return WebAssembly.instantiate(wasmBytes, { env: { emit } }).then(({ instance }) => {
    exports = instance.exports;
  });
}

const ready = fetch("flowzoo_web.wasm")
  .then((response) => {
    if (!response.ok) throw new Error(`flowzoo_web.wasm: HTTP ${response.status}`);
    return response.arrayBuffer();
  })
  .then((bytes) => {
    wasmBytes = bytes;
    return instantiate();
  })
  .then(() => postMessage({ type: "ready" }))
  .catch((e) => postMessage({ type: "error", fatal: true, message: `cannot load the library: ${e}` }));

onmessage = async (event) => {
  await ready;
  const message = event.data;
  if (!exports) {
    postMessage({ type: "error", fatal: true, message: "the library is not loaded" });
    return;
  }
  try {
    if (message.type === "train") {
      const text = new TextEncoder().encode(message.settings);
      const ptr = exports.lab_alloc(text.length);
      new Uint8Array(exports.memory.buffer, ptr, text.length).set(text);
      started = performance.now();
      exports.lab_train(ptr, text.length);
    } else if (message.type === "logdet") {
      exports.lab_log_det(message.x, message.y);
    }
  } catch (e) {
    // A trap: a panic inside the library has already sent its message.
    // The instance is unusable from here on (its panic state stays set),
    // so the next run gets a fresh one.
    postMessage({ type: "error", trap: true, message: `the module stopped (${e})` });
    await instantiate();
  }
};
