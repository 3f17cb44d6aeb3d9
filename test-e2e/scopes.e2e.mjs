#!/usr/bin/env node
// Browser tests of the console under MEMORY_SCOPE=agent, with forwarding off (no FORWARD_DESTINATIONS):
// Debian's chromium driven by playwright-core, against `wrangler dev` on a throwaway local state
// directory and a free port. Runs alone: `node test-e2e/scopes.e2e.mjs` (CHROMIUM=... for another binary).
//
// One user calls two agents, each of which keeps its own memory of them. The user's page lists both
// agents as links; each opens what that agent remembers (its facts, summary and dynamic variables, the
// same as GET /v1/users/:id/context?agent_id=), not the other's. The forwarding page says forwarding
// is off. After the user is deleted, their page says they were erased and links the erasure's record.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { finish, freePort, launchBrowser, requireChromium, startWorker, stepper, waitFor } from "./lib.mjs";

const CHROMIUM = requireChromium();
const SECRET = "whsec_e2e_scopes_secret";
const API_KEY = "e2e-scopes-api-key";
const USER = "e2e-scoped-sam";
const AGENTS = { sales: "agent_e2e_sales", support: "agent_e2e_support" };
const fixture = JSON.parse(readFileSync("test/fixtures/transcription.json", "utf8"));

const state = mkdtempSync(join(tmpdir(), "postcall-scopes-e2e-"));
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const auth = { headers: { Authorization: `Bearer ${API_KEY}` } };
let server;
let browser;

const now = () => Math.floor(Date.now() / 1000);
const sign = (body, t = now()) => `t=${t},v0=${createHmac("sha256", SECRET).update(`${t}.${body}`).digest("hex")}`;
const getJson = async (path) => {
  const res = await fetch(`${base}${path}`, auth);
  assert.equal(res.status, 200, `${path}: ${res.status}`);
  return res.json();
};

/** A signed transcription of the fixture: its own id, agent, title, summary and one collected fact. */
async function sendCall({ id, agent, title, summary, plan }) {
  const e = structuredClone(fixture);
  e.data.conversation_id = id;
  e.data.agent_id = agent;
  e.data.conversation_initiation_client_data.dynamic_variables.user_id = USER;
  e.data.conversation_initiation_client_data.dynamic_variables.system__agent_id = agent;
  e.data.conversation_initiation_client_data.dynamic_variables.system__conversation_id = id;
  e.data.metadata.start_time_unix_secs = now() - 900;
  e.data.analysis.call_summary_title = title;
  e.data.analysis.transcript_summary = summary;
  e.data.analysis.data_collection_results = { plan: { data_collection_id: "plan", value: plan, rationale: "said so" } };
  const body = JSON.stringify(e);
  const res = await fetch(`${base}/webhooks/elevenlabs`, { method: "POST", headers: { "Content-Type": "application/json", "ElevenLabs-Signature": sign(body) }, body });
  const text = await res.text();
  assert.equal(res.status, 200, `transcription ${id}: ${text}`);
  assert.equal(JSON.parse(text).status, "stored", text);
}

const { step, steps } = stepper();
try {
  // Each agent its own memory; the user id in the payload believed as claimed (no app hands out tokens here).
  server = await startWorker({ state, port, vars: { ELEVENLABS_WEBHOOK_SECRET: SECRET, API_KEY, MEMORY_SCOPE: "agent", USER_ID_TRUST: "claimed" } });

  await step("seed: the same user calls a sales agent and a support agent", async () => {
    await sendCall({ id: "conv_e2e_scope_sales", agent: AGENTS.sales, title: "Upgrade to the family plan", summary: "Sam asked about the family plan's price.", plan: "family" });
    await sendCall({ id: "conv_e2e_scope_support", agent: AGENTS.support, title: "Router keeps dropping", summary: "Sam's router drops every evening; a replacement was sent.", plan: "basic" });
    await waitFor(async () => (await getJson(`/v1/users/${USER}/memory`)).scopes.length === 2, "both agents' memories");
  });
  const scoped = {
    sales: (await getJson(`/v1/users/${USER}/context?agent_id=${AGENTS.sales}`)).dynamic_variables,
    support: (await getJson(`/v1/users/${USER}/context?agent_id=${AGENTS.support}`)).dynamic_variables,
  };
  assert.notEqual(scoped.sales.last_call_summary, scoped.support.last_call_summary);

  browser = await launchBrowser(CHROMIUM);
  const errors = [];
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${base}/console/`);
  await page.getByLabel("API key").fill(API_KEY);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Users" }).waitFor();

  /** The dynamic variables the page shows, as text by name. */
  const shownVariables = () =>
    page.locator("#next-call dl").evaluate((dl) => {
      const out = {};
      for (const dt of dl.querySelectorAll("dt")) out[dt.textContent] = dt.nextElementSibling.firstChild.textContent;
      return out;
    });

  await step("the user's page links each agent that keeps a memory of them", async () => {
    await page.goto(`${base}/console/#/users/${USER}`);
    const list = page.getByRole("list", { name: "Agents with a memory of this user" });
    await list.waitFor();
    const links = await list.getByRole("link").evaluateAll((as) => as.map((a) => [a.textContent, a.getAttribute("href")]));
    assert.deepEqual(links.sort(), [
      [AGENTS.sales, `#/users/${USER}?agent_id=${AGENTS.sales}`],
      [AGENTS.support, `#/users/${USER}?agent_id=${AGENTS.support}`],
    ]);
  });

  for (const [name, other] of [["sales", "support"], ["support", "sales"]]) {
    await step(`the ${name} agent's link shows what it remembers, and not the ${other} agent's`, async () => {
      await page.goto(`${base}/console/#/users/${USER}`);
      await page.getByRole("list", { name: "Agents with a memory of this user" }).getByRole("link", { name: AGENTS[name] }).click();
      await page.locator("#scope-note").waitFor();
      assert.match(await page.locator("#scope-note").innerText(), new RegExp(`As agent ${AGENTS[name]} remembers them`));
      const vars = await shownVariables();
      assert.equal(vars.last_call_summary, scoped[name].last_call_summary);
      assert.equal(vars.call_count, String(scoped[name].call_count));
      assert.notEqual(vars.last_call_summary, scoped[other].last_call_summary);
      const facts = await page.getByRole("region", { name: "Facts" }).innerText();
      assert.match(facts, name === "sales" ? /family/ : /basic/);
      assert.doesNotMatch(facts, name === "sales" ? /basic/ : /family/);
      const current = page.getByRole("list", { name: "Agents with a memory of this user" }).locator('[aria-current="page"]');
      assert.equal(await current.innerText(), AGENTS[name]);
      await page.getByRole("link", { name: `Every agent's view of ${USER}` }).click();
      await page.getByRole("heading", { name: USER, level: 1 }).waitFor();
      await waitFor(async () => (await page.locator("#scope-note").count()) === 0, "the unscoped page");
    });
  }

  await step("an agent that never spoke with the user says so", async () => {
    await page.goto(`${base}/console/#/users/${USER}?agent_id=agent_e2e_never`);
    await page.getByText("Agent agent_e2e_never holds no memory of this user.").waitFor();
  });

  await step("with no FORWARD_DESTINATIONS, the forwarding page says forwarding is off", async () => {
    assert.equal((await getJson("/v1/forwarding/failures")).destinations, 0);
    await page.goto(`${base}/console/#/forwarding`);
    const note = page.locator("#forwarding-empty");
    await note.waitFor();
    assert.match(await note.innerText(), /^Forwarding is off: FORWARD_DESTINATIONS names no destination/);
  });

  await step("after the user is deleted, their page says they were erased and links the erasure's record", async () => {
    const res = await fetch(`${base}/v1/users/${USER}`, { method: "DELETE", ...auth });
    assert.equal(res.status, 200);
    const { erasure_id: erasureId } = await res.json();
    await page.goto(`${base}/console/#/`);
    await page.goto(`${base}/console/#/users/${USER}`);
    const note = page.locator("#erased-note");
    await note.waitFor();
    assert.match(await note.innerText(), /^Erased .*everything postcall held for this id was deleted/);
    await note.getByRole("link", { name: "The erasure's record" }).click();
    await page.getByRole("region", { name: `Erasure ${erasureId}` }).waitFor();
    // A user never erased shows no such note.
    await page.goto(`${base}/console/#/users/e2e-never-erased`);
    await page.getByText("No memory yet").waitFor();
    assert.equal(await page.locator("#erased-note").count(), 0);
  });

  assert.deepEqual(errors, [], "uncaught errors in the page");
  console.log(`\n${steps.length} agent-scope console checks passed`);
  await finish({ browser, server, state });
} catch (err) {
  await finish({ err, browser, server, state });
}
