// The lab's page: settings in, pictures out. The training runs in
// worker.js; this file only draws what it posts.

"use strict";

const $ = (id) => document.getElementById(id);
const ENERGIES = ["ring", "wave", "bump", "step"];
const SETTINGS = ["data", "flow", "layers", "hidden", "steps", "batch", "lr", "seed", "every"];

let worker = null;
let losses = [];
let totalSteps = 1;
let box = null; // [x0, x1, y0, y1] of the pictures
let data = null; // data points, or null for an energy
let target = null; // an energy's log-density grid
let lastFrame = null;
let clicked = null;
let trained = false;

// ---------- colours ----------

// Viridis at nine stops, interpolated linearly.
const VIRIDIS = [
  [68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
  [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37],
];
function viridis(t) {
  const x = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const f = x - i;
  return VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
}
const QUADRANT = ["#e6550d", "#3182bd", "#31a354", "#756bb1"];

// ---------- drawing ----------

/** A log-density grid (row 0 at the top) as an image: 8 nats of range below the peak. */
function drawDensity(canvas, grid, resolution) {
  const ctx = canvas.getContext("2d");
  let top = -Infinity;
  for (const v of grid) if (Number.isFinite(v) && v > top) top = v;
  const image = ctx.createImageData(resolution, resolution);
  for (let i = 0; i < grid.length; i++) {
    const v = grid[i];
    const t = Number.isFinite(v) ? (v - (top - 8)) / 8 : 0;
    const [r, g, b] = viridis(t);
    image.data.set([r, g, b, 255], 4 * i);
  }
  const off = new OffscreenCanvas(resolution, resolution);
  off.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
  if (clicked) {
    const [px, py] = toPixel(canvas, box, clicked[0], clicked[1]);
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(px, py, 6, 0, 2 * Math.PI);
    ctx.stroke();
  }
}

function toPixel(canvas, [x0, x1, y0, y1], x, y) {
  return [((x - x0) / (x1 - x0)) * canvas.width, ((y1 - y) / (y1 - y0)) * canvas.height];
}

/** Points [n, 2] as dots; `colour` a string or a function of the index. */
function drawPoints(ctx, canvas, bounds, points, colour, size) {
  for (let i = 0; i < points.length / 2; i++) {
    const [px, py] = toPixel(canvas, bounds, points[2 * i], points[2 * i + 1]);
    ctx.fillStyle = typeof colour === "function" ? colour(i) : colour;
    ctx.fillRect(px - size / 2, py - size / 2, size, size);
  }
}

function drawSamples(frame) {
  if (!box) return; // the data come before the first frame gives the box
  const canvas = $("samples");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (target) {
    drawDensity(canvas, target.density, target.resolution);
    ctx.globalAlpha = 0.35;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.globalAlpha = 1;
  }
  if (data) drawPoints(ctx, canvas, box, data, "rgba(120,120,120,0.45)", 2.5);
  if (frame) drawPoints(ctx, canvas, box, frame.samples, "rgba(230,85,13,0.75)", 2.5);
}

/** A box around most of the points (0.5 % to 99.5 % in each coordinate), padded. */
function boundsOf(points) {
  const xs = [], ys = [];
  for (let i = 0; i < points.length / 2; i++) {
    xs.push(points[2 * i]);
    ys.push(points[2 * i + 1]);
  }
  const range = (v) => {
    v.sort((a, b) => a - b);
    const lo = v[Math.floor(0.005 * (v.length - 1))], hi = v[Math.ceil(0.995 * (v.length - 1))];
    const pad = 0.1 * (hi - lo || 1);
    return [lo - pad, hi + pad];
  };
  const [x0, x1] = range(xs), [y0, y1] = range(ys);
  return [x0, x1, y0, y1];
}

function drawStages(frame) {
  const holder = $("stages");
  holder.replaceChildren();
  const base = frame.stages[0].points;
  const quadrant = (i) => QUADRANT[(base[2 * i] >= 0 ? 0 : 1) + (base[2 * i + 1] >= 0 ? 0 : 2)];
  frame.stages.forEach((stage, s) => {
    const figure = document.createElement("figure");
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 170;
    const last = s === frame.stages.length - 1;
    const bounds = last ? box : boundsOf(stage.points);
    drawPoints(canvas.getContext("2d"), canvas, bounds, stage.points, quadrant, 2);
    const caption = document.createElement("figcaption");
    caption.textContent = last ? `${stage.name} = x (data box)` : stage.name;
    figure.append(canvas, caption);
    holder.append(figure);
  });
}

function drawLoss() {
  const canvas = $("loss");
  const ctx = canvas.getContext("2d");
  const [w, h, left, bottom] = [canvas.width, canvas.height, 48, 22];
  ctx.clearRect(0, 0, w, h);
  if (losses.length < 2) return;
  const finite = losses.filter(([, l]) => Number.isFinite(l)).map(([, l]) => l);
  const sorted = [...finite].sort((a, b) => a - b);
  const lo = sorted[0];
  // The first steps' loss can be far above the rest: clip at the 98th percentile.
  const hi = Math.max(sorted[Math.floor(0.98 * (sorted.length - 1))], lo + 1e-6);
  const x = (step) => left + ((step - 1) / Math.max(totalSteps - 1, 1)) * (w - left - 8);
  const y = (loss) => 8 + (1 - (Math.min(loss, hi) - lo) / (hi - lo)) * (h - bottom - 8);
  ctx.strokeStyle = "#999";
  ctx.fillStyle = "#444";
  ctx.font = "11px sans-serif";
  ctx.beginPath();
  ctx.moveTo(left, 8);
  ctx.lineTo(left, h - bottom);
  ctx.lineTo(w - 8, h - bottom);
  ctx.stroke();
  for (const v of [lo, (lo + hi) / 2, hi]) ctx.fillText(v.toFixed(2), 4, y(v) + 4);
  ctx.fillText("1", left - 3, h - 6);
  ctx.fillText(String(totalSteps), w - 40, h - 6);
  ctx.fillText("step", w / 2, h - 6);
  ctx.strokeStyle = "#3182bd";
  ctx.beginPath();
  losses.forEach(([step, loss], i) => {
    if (!Number.isFinite(loss)) return;
    if (i === 0) ctx.moveTo(x(step), y(loss));
    else ctx.lineTo(x(step), y(loss));
  });
  ctx.stroke();
}

let lossPending = false;
function scheduleLoss() {
  if (lossPending) return;
  lossPending = true;
  requestAnimationFrame(() => {
    lossPending = false;
    drawLoss();
  });
}

// ---------- settings ----------

function settingsText() {
  return SETTINGS.map((k) => `${k}=${$(k).value.trim()}`).join(" ");
}

/** The energies go with the IAF only, the data sets with every other flow. */
function matchFlowToData() {
  const energy = ENERGIES.includes($("data").value);
  for (const option of $("flow").options) option.disabled = energy !== (option.value === "iaf");
  if ($("flow").selectedOptions[0].disabled) $("flow").value = energy ? "iaf" : "realnvp";
}

function commandLine() {
  const v = (k) => $(k).value.trim();
  const energy = ENERGIES.includes(v("data"));
  const data = energy ? `energy --target ${v("data")}` : v("data");
  return `flowzoo train --data ${data} --flow ${v("flow")} --layers ${v("layers")} ` +
    `--hidden ${v("hidden")} --steps ${v("steps")} --batch ${v("batch")} --lr ${v("lr")} ` +
    `--seed ${v("seed")} --eval-every ${v("every")}`;
}

// ---------- the worker ----------

function setStatus(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

function onMessage({ data: m }) {
  switch (m.type) {
    case "ready":
      $("train").disabled = false;
      $("train").textContent = "train";
      setStatus("Ready. Pick a data set and a flow, then train.");
      if (new URLSearchParams(location.search).has("autostart")) start();
      break;
    case "data":
      data = m.points;
      drawSamples(null);
      break;
    case "target":
      target = m;
      box = m.box;
      drawDensity($("density"), m.density, m.resolution);
      drawSamples(null);
      break;
    case "step":
      losses.push([m.step, m.loss]);
      scheduleLoss();
      setStatus(`step ${m.step} of ${totalSteps}, loss ${m.loss.toFixed(4)} nats, ` +
        `${(m.step / (m.ms / 1000)).toFixed(1)} steps/s`);
      break;
    case "frame":
      lastFrame = m;
      box = m.box;
      drawDensity($("density"), m.density, m.resolution);
      drawSamples(m);
      drawStages(m);
      break;
    case "done": {
      const s = m.summary;
      trained = true;
      $("test-nll").textContent = s.test_nll ?? "—";
      $("kl").textContent = s.kl ?? "—";
      $("parameters").textContent = s.parameters.toLocaleString("en");
      $("speed").textContent = `${(s.steps / m.seconds).toFixed(1)} (${m.seconds.toFixed(1)} s, pictures included)`;
      $("checkpoint").textContent = `${s.checkpoint_fnv} (${s.checkpoint_len} bytes)`;
      $("train").disabled = false;
      setStatus(`Done: ${s.steps} steps in ${m.seconds.toFixed(1)} s. Click the density for log|det J|.`);
      document.body.dataset.state = "done";
      break;
    }
    case "logdet": {
      if (!trained) break; // an answer about the previous run's model
      const c = m.check;
      clicked = c.x;
      const show = (v, digits) => (v === null ? "not finite" : v.toPrecision(digits));
      const pair = ([a, b]) => `(${show(a, 5)}, ${show(b, 5)})`;
      $("ld-x").textContent = pair(c.x);
      $("ld-z").textContent = pair(c.z);
      $("ld-formula").textContent = show(c.formula, 12);
      $("ld-fd").textContent = show(c.finite_difference, 12);
      $("ld-diff").textContent = c.formula === null || c.finite_difference === null
        ? "—" : Math.abs(c.formula - c.finite_difference).toExponential(2);
      $("ld-logp").textContent = show(c.log_prob, 8);
      if (lastFrame) drawDensity($("density"), lastFrame.density, lastFrame.resolution);
      document.body.dataset.logdet = "shown";
      break;
    }
    case "error":
      if (m.fatal) {
        // The library could not load: nothing can run.
        setStatus(m.message, true);
        $("train").disabled = true;
        $("train").textContent = "unavailable";
        document.body.dataset.state = "error";
        break;
      }
      // A trap follows the library's own message: keep that one first.
      if (m.trap && document.body.dataset.state === "error") {
        setStatus(`${$("status").textContent} (${m.message})`, true);
      } else {
        setStatus(m.message, true);
      }
      $("train").disabled = false;
      document.body.dataset.state = "error";
      break;
  }
}

function newWorker() {
  if (worker) worker.terminate();
  worker = new Worker("worker.js");
  worker.onmessage = onMessage;
}

function start() {
  losses = [];
  data = target = lastFrame = clicked = null;
  trained = false;
  totalSteps = Number($("steps").value) || 1;
  for (const id of ["test-nll", "kl", "parameters", "speed", "checkpoint",
    "ld-x", "ld-z", "ld-formula", "ld-fd", "ld-diff", "ld-logp"]) $(id).textContent = "";
  delete document.body.dataset.logdet;
  $("command").textContent = commandLine();
  $("stages").replaceChildren();
  delete document.body.dataset.state;
  $("train").disabled = true;
  setStatus("Training…");
  worker.postMessage({ type: "train", settings: settingsText() });
}

// ---------- wiring ----------

const query = new URLSearchParams(location.search);
for (const k of SETTINGS) if (query.has(k)) $(k).value = query.get(k);
matchFlowToData();
$("data").addEventListener("change", matchFlowToData);
$("settings").addEventListener("submit", (e) => {
  e.preventDefault();
  start();
});
$("density").addEventListener("click", (e) => {
  if (!trained || !box) return;
  const rect = e.target.getBoundingClientRect();
  const [x0, x1, y0, y1] = box;
  const x = x0 + ((e.clientX - rect.left) / rect.width) * (x1 - x0);
  const y = y1 - ((e.clientY - rect.top) / rect.height) * (y1 - y0);
  worker.postMessage({ type: "logdet", x, y });
});
newWorker();
