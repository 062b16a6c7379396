// The lab in a real browser: serves web/dist on localhost, opens the page
// in headless Chromium (Debian's, driven by playwright-core), sets the
// run's settings in the form, presses "train", waits for the result, and
// checks that the test NLL and the checkpoint hash the page shows are the
// native run's (the summary JSON of lab-reference, given with --expect),
// then clicks the density and checks the log-det panel (formula against
// finite differences). Saves a screenshot of the page after training.
//
//   node web/tests/browser.mjs --dist web/dist --expect native.json \
//        --screenshot web/tests/out/lab.png data=moons flow=realnvp steps=300
//
// Exit status 0 only if every check passed.
import { createServer } from "node:http";
import { readFileSync, mkdirSync } from "node:fs";
import { dirname, extname, join, normalize } from "node:path";
import { chromium } from "playwright-core";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  const value = args[i + 1];
  args.splice(i, 2);
  return value;
};
const dist = option("--dist", "web/dist");
const expectPath = option("--expect", null);
const screenshot = option("--screenshot", "web/tests/out/lab.png");
const browserPath = option("--browser", "/usr/bin/chromium");
const settings = Object.fromEntries(args.map((a) => a.split("=")));
const expected = expectPath ? JSON.parse(readFileSync(expectPath, "utf8")) : null;

const TYPES = {
  ".html": "text/html", ".js": "text/javascript", ".css": "text/css",
  ".wasm": "application/wasm",
};
const server = createServer((request, response) => {
  const path = normalize(decodeURIComponent(new URL(request.url, "http://x").pathname));
  const file = join(dist, path === "/" ? "index.html" : path);
  try {
    const body = readFileSync(file);
    response.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
    response.end(body);
  } catch {
    response.writeHead(404);
    response.end();
  }
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const url = `http://127.0.0.1:${server.address().port}/`;

const failures = [];
const check = (ok, what) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures.push(what);
};

const browser = await chromium.launch({
  executablePath: browserPath,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
  const consoleErrors = [];
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  await page.goto(url);
  await page.waitForSelector("#train:not([disabled])", { timeout: 60_000 });
  for (const [key, value] of Object.entries(settings)) {
    const tag = await page.$eval(`#${key}`, (e) => e.tagName);
    if (tag === "SELECT") await page.selectOption(`#${key}`, value);
    else await page.fill(`#${key}`, value);
  }
  const started = Date.now();
  await page.click("#train");
  await page.waitForSelector("body[data-state]", { timeout: 600_000 });
  const seconds = (Date.now() - started) / 1000;
  const state = await page.$eval("body", (b) => b.dataset.state);
  const status = await page.textContent("#status");
  check(state === "done", `training finished in the page (${status.trim()})`);
  const shown = {
    test_nll: (await page.textContent("#test-nll")).trim(),
    kl: (await page.textContent("#kl")).trim(),
    checkpoint: (await page.textContent("#checkpoint")).trim(),
    speed: (await page.textContent("#speed")).trim(),
  };
  console.log(`page: test NLL ${shown.test_nll}, KL ${shown.kl}, checkpoint ${shown.checkpoint}, ` +
    `steps/s ${shown.speed} (${seconds.toFixed(1)} s from the click)`);
  if (expected) {
    const figure = expected.test_nll ?? expected.kl;
    const pageFigure = expected.test_nll !== null ? shown.test_nll : shown.kl;
    check(pageFigure === figure, `the page's figure ${pageFigure} is the native one ${figure}`);
    check(shown.checkpoint.startsWith(expected.checkpoint_fnv),
      `the page's checkpoint hash ${shown.checkpoint.split(" ")[0]} is the native one ${expected.checkpoint_fnv}`);
  }
  // The click panel at a point off-centre of the density picture.
  await page.click("#density", { position: { x: 200, y: 140 } });
  await page.waitForSelector("body[data-logdet]", { timeout: 60_000 });
  const formula = Number(await page.textContent("#ld-formula"));
  const fd = Number(await page.textContent("#ld-fd"));
  check(Number.isFinite(formula) && Math.abs(formula - fd) <= 1e-6 * Math.max(1, Math.abs(formula)),
    `log|det J| at the clicked point: formula ${formula}, finite differences ${fd}`);
  const stages = await page.$$eval("#stages figure", (f) => f.length);
  check(stages >= 2, `the layer-by-layer picture has ${stages} stages`);
  check(consoleErrors.length === 0, `no errors in the page's console${consoleErrors.length ? ": " + consoleErrors.join("; ") : ""}`);
  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`screenshot: ${screenshot}`);
} finally {
  await browser.close();
  server.close();
}
if (failures.length) {
  console.error(`${failures.length} check(s) failed`);
  process.exit(1);
}
