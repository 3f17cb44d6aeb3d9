#!/usr/bin/env node
// Browser tests of the console's health page (#/health): Debian's chromium driven by playwright-core,
// against `wrangler dev` on a throwaway local state directory and a free port. Runs alone:
//
//   node test-e2e/health.e2e.mjs           (CHROMIUM=/path/to/chromium to use another binary)
//   SCREENSHOTS=1 node test-e2e/health.e2e.mjs   also writes docs/screenshots/health{,-phone}.png
//
// It sends real signed webhooks (calls over the last days with outcomes, durations and audio, one
// call whose audio never comes) and a storm of unsigned and wrongly signed ones, then checks that the
// page names the storm and the missing audio (and no backlog), and that each chart is drawn, on its
// canvas, with exactly the numbers the API reports, at desktop and at phone width.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { finish, freePort, launchBrowser, requireChromium, silentMp3, startWorker, stepper, waitFor } from "./lib.mjs";

const CHROMIUM = requireChromium();
const SCREENSHOTS = process.env.SCREENSHOTS === "1";
const SECRET = "whsec_e2e_health_secret";
const API_KEY = "e2e-health-api-key";
const SHOTS = "docs/screenshots";
const fixture = JSON.parse(readFileSync("test/fixtures/transcription.json", "utf8"));

const state = mkdtempSync(join(tmpdir(), "postcall-health-e2e-"));
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
let server;
let browser;

const now = () => Math.floor(Date.now() / 1000);

async function post(body, signature) {
  const headers = { "Content-Type": "application/json" };
  if (signature !== null) headers["ElevenLabs-Signature"] = signature;
  return fetch(`${base}/webhooks/elevenlabs`, { method: "POST", headers, body });
}

const sign = (body, secret = SECRET, t = now()) => `t=${t},v0=${createHmac("sha256", secret).update(`${t}.${body}`).digest("hex")}`;

/** A signed transcription of the fixture with its own id, start, duration and outcome. */
async function sendCall({ id, user, agent, startedAgo, duration, outcome }) {
  const e = structuredClone(fixture);
  e.data.conversation_id = id;
  e.data.agent_id = agent;
  e.data.conversation_initiation_client_data.dynamic_variables.user_id = user;
  e.data.metadata.start_time_unix_secs = now() - startedAgo;
  e.data.metadata.call_duration_secs = duration;
  e.data.analysis.call_successful = outcome;
  e.data.analysis.call_summary_title = `Call ${id}`;
  const body = JSON.stringify(e);
  const res = await post(body, sign(body));
  assert.equal(res.status, 200, `transcription ${id}: ${await res.text()}`);
}

async function sendAudio(id, agent) {
  const body = JSON.stringify({ type: "post_call_audio", event_timestamp: now(), data: { agent_id: agent, conversation_id: id, full_audio: silentMp3(3).toString("base64") } });
  const res = await post(body, sign(body));
  assert.equal(res.status, 200, `audio ${id}: ${await res.text()}`);
}

const details = async () => (await fetch(`${base}/v1/health/details`, { headers: { Authorization: `Bearer ${API_KEY}` } })).json();
const sum = (xs) => xs.reduce((a, b) => a + b, 0);

const { step, steps } = stepper();

/** Each chart's per-dataset sums as drawn (Chart.js's own data), its bars' heights, and whether its canvas has paint on it. */
const drawnCharts = (page) =>
  page.evaluate(() =>
    ["chart-calls", "chart-refusals", "chart-durations"].map((id) => {
      const canvas = /** @type {HTMLCanvasElement} */ (document.getElementById(id));
      const chart = /** @type {any} */ (window).Chart?.getChart(canvas);
      if (!chart) return null;
      const sums = Object.fromEntries(chart.data.datasets.map((d) => [d.label, d.data.reduce((a, b) => a + b, 0)]));
      const barPixels = chart.data.datasets.flatMap((_d, i) => chart.getDatasetMeta(i).data.map((bar) => Math.abs(bar.base - bar.y)));
      const ctx = canvas.getContext("2d");
      const img = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      let painted = 0;
      for (let i = 3; i < img.length; i += 4) if (img[i] > 0) painted++;
      // The x axis's labels as drawn (Chart.js skips some when crowded, unless told not to).
      const ticks = chart.scales.x.ticks.map((t) => chart.scales.x.getLabelForValue(t.value));
      return { sums, tallestBar: Math.max(0, ...barPixels), painted, width: canvas.getBoundingClientRect().width, ticks, labels: chart.data.labels };
    }),
  );

try {
  server = await startWorker({ state, port, vars: { ELEVENLABS_WEBHOOK_SECRET: SECRET, API_KEY, AUDIO_BACKFILL_AFTER_SECONDS: "0" } });

  const CALLS = 12;
  const MISSING = "conv_health_no_audio";
  const STORM = { missing: 30, mismatch: 25 };
  await step("seed: 12 calls over six days (one without its audio) and a storm of refused webhooks", async () => {
    const outcomes = ["success", "success", "failure", "unknown"];
    const durations = [20, 45, 75, 150, 400, 900, 1500];
    for (let i = 0; i < CALLS; i++) {
      const id = i === CALLS - 1 ? MISSING : `conv_health_${i}`;
      await sendCall({ id, user: `e2e-caller-${i % 3}`, agent: "agent_health_e2e", startedAgo: (i % 6) * 86_400 + 600, duration: durations[i % durations.length], outcome: outcomes[i % outcomes.length] });
      if (id !== MISSING) await sendAudio(id, "agent_health_e2e");
    }
    const body = JSON.stringify(fixture);
    for (let i = 0; i < STORM.missing; i++) assert.equal((await post(body, null)).status, 401);
    for (let i = 0; i < STORM.mismatch; i++) assert.equal((await post(body, sign(body, "whsec_someone_else"))).status, 401);
    await waitFor(async () => sum((await details()).charts.call_durations.counts) === CALLS, "the calls in D1");
    await waitFor(async () => (await details()).audio.missing_24h === 1, "the missing audio");
    // A call that never connected: a failure of calls per day too.
    const failure = JSON.parse(readFileSync("test/fixtures/call-initiation-failure-sip.json", "utf8"));
    failure.data.conversation_id = "conv_health_never_connected";
    failure.event_timestamp = now();
    const failed = JSON.stringify(failure);
    assert.equal((await post(failed, sign(failed))).status, 200);
    await waitFor(async () => sum((await details()).charts.calls_per_day.outcomes.not_connected) === 1, "the failed call in D1");
  });

  const api = await details();
  assert.deepEqual(api.problems.map((p) => p.code).sort(), ["audio_missing", "webhook_refusals"]);
  assert.equal(api.webhooks.last_24h.refused.signature_missing, STORM.missing);
  assert.equal(api.webhooks.last_24h.refused.signature_mismatch, STORM.mismatch);

  browser = await launchBrowser(CHROMIUM);
  const errors = [];
  const signIn = async (context) => {
    const page = await context.newPage();
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`${base}/console/`);
    await page.getByLabel("API key").fill(API_KEY);
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Users" }).waitFor();
    return page;
  };

  const desktop = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await signIn(desktop);

  await step("the nav leads to the health page, which names the refusal storm and the missing audio, and no backlog", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Health" }).click();
    await page.getByRole("heading", { name: "Health", level: 1 }).waitFor();
    const problems = page.getByRole("list", { name: "Problems" }).getByRole("listitem");
    await problems.first().waitFor();
    const shown = await problems.evaluateAll((items) => items.map((li) => li.getAttribute("data-code")).sort());
    assert.deepEqual(shown, ["audio_missing", "webhook_refusals"]);
    assert.match(await problems.filter({ hasText: "refused" }).innerText(), /55 of 79 post-call webhook requests were refused.*signature_missing \(30\)/);
    assert.match(await page.locator("#outbox-summary").innerText(), /Every acknowledged event has reached D1 and R2/);
    assert.match(await page.locator("#audio-summary").innerText(), /^1 in 24 h/);
    await page.getByRole("list", { name: "Calls without audio" }).getByRole("link", { name: MISSING }).waitFor();
    assert.match(await page.getByRole("table", { name: "Refused" }).innerText(), /signature_mismatch\s+25\s+25/);
  });

  await step("the three charts are drawn on their canvases with the API's numbers", async () => {
    await waitFor(async () => (await drawnCharts(page)).every((c) => c !== null), "the charts");
    const [calls, refusals, durations] = await drawnCharts(page);
    const words = { success: "successful", failure: "unsuccessful", unknown: "not evaluated", not_connected: "never connected" };
    assert.deepEqual(calls.sums, Object.fromEntries(Object.entries(api.charts.calls_per_day.outcomes).map(([k, v]) => [words[k] ?? k, sum(v)])));
    assert.equal(sum(Object.values(calls.sums)), CALLS + 1);
    assert.equal(calls.sums["never connected"], 1);
    // Every duration bin carries its label, in the API's order.
    assert.deepEqual(durations.ticks, api.charts.call_durations.buckets);
    assert.deepEqual(durations.labels, ["< 30 s", "30–60 s", "1–2 min", "2–5 min", "5–10 min", "10–20 min", "≥ 20 min"]);
    assert.deepEqual(refusals.sums, { signature_missing: STORM.missing, signature_mismatch: STORM.mismatch });
    assert.deepEqual(durations.sums, { calls: CALLS });
    for (const c of [calls, refusals, durations]) {
      assert.ok(c.tallestBar > 20, `a bar is drawn (${c.tallestBar} px tall)`);
      assert.ok(c.painted > 2000, `the canvas is painted (${c.painted} pixels)`);
    }
    if (SCREENSHOTS) {
      mkdirSync(SHOTS, { recursive: true });
      await page.screenshot({ path: `${SHOTS}/health.png`, fullPage: true });
    }
  });

  await step("Refresh draws the page again, replacing its charts", async () => {
    await page.getByRole("button", { name: "Refresh" }).click();
    await waitFor(async () => (await drawnCharts(page)).every((c) => c !== null && c.tallestBar > 20), "the charts after Refresh");
    assert.equal(await page.evaluate(() => Object.keys(/** @type {any} */ (window).Chart.instances).length), 3);
  });

  await step("a missing-audio link opens its conversation", async () => {
    await page.getByRole("link", { name: MISSING }).click();
    await page.getByRole("heading", { name: `Call ${MISSING}` }).waitFor();
    await page.getByText("No recording stored for this call.").waitFor();
  });

  await step("phone width: the page and its charts fit 375 px", async () => {
    const phone = await browser.newContext({ viewport: { width: 375, height: 812 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const p = await signIn(phone);
    await p.goto(`${base}/console/#/health`);
    await p.getByRole("heading", { name: "Health", level: 1 }).waitFor();
    await waitFor(async () => (await drawnCharts(p)).every((c) => c !== null), "the charts at phone width");
    const charts = await drawnCharts(p);
    for (const c of charts) {
      assert.ok(c.width > 250 && c.width <= 375, `chart width ${c.width}`);
      assert.ok(c.tallestBar > 20, "a bar is drawn at phone width");
    }
    assert.deepEqual(charts[2].ticks, charts[2].labels, "every duration bin is labelled at phone width");
    assert.ok(await p.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), "the health page overflows at 375 px");
    if (SCREENSHOTS) await p.screenshot({ path: `${SHOTS}/health-phone.png`, fullPage: true });
    await phone.close();
  });

  assert.deepEqual(errors, [], "uncaught errors in the page");
  console.log(`\n${steps.length} health page checks passed${SCREENSHOTS ? `; screenshots in ${SHOTS}/` : ""}`);
  await finish({ browser, server, state });
} catch (err) {
  await finish({ err, browser, server, state });
}
