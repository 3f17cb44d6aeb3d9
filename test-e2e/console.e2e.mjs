#!/usr/bin/env node
// Browser tests of the operator console: Debian's chromium driven by playwright-core, against
// `wrangler dev` on a throwaway local state directory, seeded with the sample sender.
//
//   npm run test:e2e            (CHROMIUM=/path/to/chromium to use another binary)
//
// With SCREENSHOTS=1, screenshots of every page at desktop and phone widths are written to
// docs/screenshots/ (only then, so a CI run leaves the tree clean).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { finish, freePort, launchBrowser, requireChromium, startWorker, stepper, waitFor } from "./lib.mjs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startReceiver } from "../scripts/lib/forward-receiver.mjs";

const CHROMIUM = requireChromium();
const SECRET = "whsec_e2e_secret";
const API_KEY = "e2e-api-key";
const USER = "e2e-dana";
const CONVERSATION = "conv_e2e_cracked_screen";
const SHOTS = "docs/screenshots";
// Forwarding: call.failed only, to a local receiver (scripts/lib/forward-receiver.mjs) the failures step controls.
const FORWARD_SECRET = `whsec_${Buffer.from("e2e-forwarding-signing-secret-32b").toString("base64")}`;
const WRITE_SHOTS = process.env.SCREENSHOTS === "1";
const AUDIO_ONLY = "conv_e2e_audio_before_transcript";
const PHONE = "+14155550142";
/** An 8 MB recording (hours of the sample call, scripts/lib/sample-audio.mjs), and one that is not MP3 at all. */
const LONG = "conv_e2e_long_call";
const NOISE = "conv_e2e_not_mp3";
/** The spoken sample call (scripts/make-sample-audio.sh): about 19 s. */
const SAMPLE_MP3 = "test/fixtures/sample-call.mp3";
const env = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", CI: "true" };

/** A screenshot, only when asked for (SCREENSHOTS=1). */
async function shot(target, name, opts = {}) {
  if (WRITE_SHOTS) await target.screenshot({ path: `${SHOTS}/${name}.png`, ...opts });
}

const state = mkdtempSync(join(tmpdir(), "postcall-e2e-"));
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
let server;
let browser;
const receiver = await startReceiver({ secrets: [FORWARD_SECRET] });
const forwardTo = JSON.stringify([{ name: "pager", url: `${receiver.url}/pager`, events: ["call.failed"] }]);

function sample(...args) {
  const r = spawnSync(process.execPath, ["scripts/send-sample.mjs", ...args, "--url", base, "--secret", SECRET, "--api-key", API_KEY], { env, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`send-sample ${args.join(" ")} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const { step, steps } = stepper();

/** Seeks the player to `t` seconds and resolves with where it landed. */
const seekTo = (audio, t) =>
  audio.evaluate(
    (a, to) =>
      new Promise((resolve) => {
        a.addEventListener("seeked", () => resolve(a.currentTime), { once: true });
        a.currentTime = to;
      }),
    t,
  );

try {
  server = await startWorker({
    state,
    port,
    vars: { ELEVENLABS_WEBHOOK_SECRET: SECRET, API_KEY, FORWARD_SIGNING_SECRET: FORWARD_SECRET, FORWARD_DESTINATIONS: forwardTo },
  });

  await step("seed with the sample sender", async () => {
    // The number calls on its own first (its own memory: one call), then its call as USER links it.
    sample("transcription", "--phone", PHONE, "--title", "Delivery address change", "--started-ago", "172800");
    sample("transcription", "--user", USER, "--title", "Billing question", "--started-ago", "86400");
    sample("transcription", "--user", USER, "--conversation", CONVERSATION, "--title", "Cracked screen replacement", "--phone", PHONE);
    sample("audio", "--conversation", CONVERSATION); // the sample recording, as `npm run send-sample -- audio` sends it
    sample("audio", "--conversation", AUDIO_ONLY); // a recording whose transcript has not come (yet)
    sample("transcription", "--user", "e2e-other-user", "--conversation", LONG, "--title", "A very long call");
    sample("audio", "--conversation", LONG, "--audio-mb", "8");
    const noise = join(state, "noise.bin");
    writeFileSync(noise, randomBytes(200_000));
    sample("audio", "--conversation", NOISE, "--audio-file", noise);
    sample("transcription", "--user", "e2e-other-user", "--title", "Opening hours");
    // A client that claims a user id without the token the context returned: stored, in no one's memory.
    sample("transcription", "--user", "e2e-claimer", "--title", "Claimed without a token", "--token", "none");
    // Wait until the outboxes have reached D1 (the console reads conversations from there).
    await waitFor(async () => {
      const res = await fetch(`${base}/v1/users/${USER}/conversations`, { headers: { Authorization: `Bearer ${API_KEY}` } });
      const body = await res.json();
      return body.conversations?.length === 2 && body.conversations.some((c) => c.has_audio);
    }, "the seeded conversations in D1");
  });

  if (WRITE_SHOTS) mkdirSync(SHOTS, { recursive: true });
  // Autoplay without a gesture, so a test can press play from script and see time advance.
  browser = await launchBrowser(CHROMIUM, ["--autoplay-policy=no-user-gesture-required"]);
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  // A Content-Security-Policy violation is reported on the console, not thrown: count it as an error.
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) consoleErrors.push(m.text());
  });

  await step("the console's pages and assets carry the security headers (public/_headers)", async () => {
    for (const path of ["/console/", "/console/app.js", "/console/style.css"]) {
      const res = await fetch(`${base}${path}`);
      assert.equal(res.status, 200, path);
      const csp = res.headers.get("content-security-policy") ?? "";
      assert.match(csp, /script-src 'self'/, path);
      assert.match(csp, /frame-ancestors 'none'/, path);
      assert.doesNotMatch(csp, /unsafe-inline/, path);
      assert.equal(res.headers.get("x-content-type-options"), "nosniff", path);
      assert.equal(res.headers.get("referrer-policy"), "no-referrer", path);
    }
  });

  await step("the sign-in page shows no navigation, and the favicon is served", async () => {
    await page.goto(`${base}/`);
    await page.getByLabel("API key").waitFor();
    assert.equal(await page.locator("#nav").isVisible(), false, "the nav is visible on the sign-in page");
    assert.equal(await page.getByRole("button", { name: "Sign out" }).isVisible(), false);
    const icon = await fetch(`${base}/favicon.ico`);
    assert.equal(icon.status, 200);
    assert.match(icon.headers.get("content-type") ?? "", /icon/);
    assert.ok((await icon.arrayBuffer()).byteLength > 100);
  });

  await step("a wrong key is refused with a clear message", async () => {
    await page.goto(`${base}/`);
    await page.getByLabel("API key").fill("not-the-key");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("That API key is not valid.").waitFor();
    await shot(page, "sign-in");
  });

  await step("sign in and find a user", async () => {
    await page.getByLabel("API key").fill(API_KEY);
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Users" }).waitFor();
    assert.equal(await page.locator("#nav").isVisible(), true, "the nav is hidden once signed in");
    await page.getByRole("link", { name: new RegExp(USER) }).waitFor();
    await page.getByLabel("Find a user").fill("dana");
    await page.keyboard.press("Enter");
    await page.waitForURL(/q=dana/);
    const users = page.getByRole("list", { name: "Users" }).getByRole("listitem");
    await waitFor(async () => (await users.count()) === 1, "the filtered user list");
    assert.match(await users.first().innerText(), /2 conversations/);
    // The same user, found by the phone number their call linked, typed as people type numbers.
    await page.getByLabel("Find a user").fill("+1 (415) 555-0142");
    await page.keyboard.press("Enter");
    await page.waitForURL(/q=%2B1/);
    // The linked user first, then the number's own memory (its call before the link).
    await waitFor(async () => (await users.count()) === 2 && (await users.first().innerText()).includes(USER) && (await users.nth(1).innerText()).includes(PHONE), "the user found by phone number");
    await page.getByLabel("Find a user").fill("dana");
    await page.keyboard.press("Enter");
    await page.waitForURL(/q=dana/);
    await waitFor(async () => (await users.count()) === 1, "the filtered user list");
    await shot(page, "users", { fullPage: true });
  });

  await step("the user page shows what the agent will know next call", async () => {
    await page.getByRole("link", { name: new RegExp(USER) }).click();
    await page.getByRole("heading", { name: "Next call: dynamic variables" }).waitFor();
    const vars = page.locator("dl.vars").first();
    await waitFor(async () => /call_count\s*2/.test(await vars.innerText()), "call_count 2");
    const text = await vars.innerText();
    assert.match(text, /previous_topics\s*Cracked screen replacement; Billing question/);
    assert.match(text, /is_returning_user\s*true/);
    const facts = await page.getByRole("region", { name: "Facts" }).innerText();
    assert.match(facts, /preferred_name\s*Dana/);
    // Values in words: a list as its items, yes/no, never JSON.
    assert.match(facts, /mentioned_products\s*Phone X/);
    assert.match(facts, /wants_sms_updates\s*yes/);
    assert.doesNotMatch(facts, /[[\]{}"]/);
    // Fact history: the Billing question call declined text messages, the later one agreed.
    await page.getByText("1 earlier value").click();
    assert.match(await page.getByRole("list", { name: "Earlier values of wants_sms_updates" }).innerText(), /^no · /);
    assert.match(await page.getByRole("region", { name: "Memory scopes" }).innerText(), /One memory for every agent/);
    // The page is found under Users: that link is marked as the current page, and only that one.
    const nav = page.getByRole("navigation", { name: "Main" });
    assert.deepEqual(await nav.locator('[aria-current="page"]').allInnerTexts(), ["Users"]);
    await page.getByRole("list", { name: "Conversations" }).getByRole("listitem").nth(1).waitFor();
    await shot(page, "user", { fullPage: true });
  });

  await step("a linked number's page shows exactly the initiation webhook's answer: the linked user's memory", async () => {
    const rung = await fetch(`${base}/webhooks/elevenlabs/initiation`, {
      method: "POST",
      headers: { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json" },
      body: JSON.stringify({ caller_id: PHONE, agent_id: "agent_e2e", called_number: "+14155550000", call_sid: "CAe2e" }),
    });
    const answer = await rung.json();
    assert.equal(answer.user_id, USER);
    await page.goto(`${base}/console/#/users/${encodeURIComponent(PHONE)}`);
    await page.getByRole("heading", { name: "When this number calls: dynamic variables" }).waitFor();
    const shown = await page.locator("#next-call dl.vars").evaluate((dl) => {
      const out = {};
      for (const dt of dl.querySelectorAll("dt")) out[dt.textContent] = dt.nextElementSibling.firstChild.textContent;
      return out;
    });
    const expected = Object.fromEntries(Object.entries(answer.dynamic_variables).map(([k, v]) => [k, typeof v === "string" ? (v === "" ? "(empty)" : v) : String(v)]));
    // The token is minted per minute: present on both, compared apart.
    assert.ok(shown.postcall_user_token?.startsWith("pu1."), "the card shows the token");
    delete shown.postcall_user_token;
    delete expected.postcall_user_token;
    assert.deepEqual(shown, expected);
    assert.equal(shown.call_count, "2", "the linked user's two calls, not the number's one");
    assert.match(await page.locator("#next-call").innerText(), new RegExp(`the memory of ${USER}, to whom the number is linked`));
    assert.match(await page.locator("#phone-link").innerText(), new RegExp(`^Linked to ${USER} since .* \\(by a call\\): calls from this number are remembered for them\\.$`));
    assert.equal(await page.getByText("No phone numbers linked.").count(), 0);
    await page.getByText("This number's own memory: 1 call").waitFor();
    await shot(page, "phone-number", { fullPage: true });
    await page.goto(`${base}/console/#/users/${USER}`);
    await page.getByRole("heading", { name: "Next call: dynamic variables" }).waitFor();
  });

  await step("the user's export downloads as NDJSON, with the transcripts and the recording", async () => {
    for (const inline of [false, true]) {
      await page.locator("#export-inline").setChecked(inline);
      const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download export (NDJSON)" }).click()]);
      assert.equal(download.suggestedFilename(), `postcall-export-${USER}.ndjson`);
      const text = readFileSync(await download.path(), "utf8");
      assert.ok(text.endsWith("\n"), "the file ends with a newline");
      const lines = text.trimEnd().split("\n").map((l) => JSON.parse(l));
      assert.equal(lines[0].type, "export");
      assert.equal(lines[0].user_id, USER);
      assert.equal(lines[0].audio, inline ? "inline" : "link");
      const conversations = lines.filter((l) => l.type === "conversation");
      assert.deepEqual(conversations.map((c) => c.title), ["Billing question", "Cracked screen replacement"]);
      assert.equal(conversations[1].transcript.length, 5);
      assert.ok(lines.some((l) => l.type === "fact" && l.id === "preferred_name" && l.value === "Dana"));
      assert.ok(lines.some((l) => l.type === "phone_link" && l.phone_number === PHONE));
      const audio = lines.find((l) => l.type === "audio");
      assert.equal(audio.bytes, readFileSync(SAMPLE_MP3).byteLength);
      if (inline) {
        const bytes = Buffer.concat(lines.filter((l) => l.type === "audio_chunk").map((c) => Buffer.from(c.data, "base64")));
        assert.ok(bytes.equals(readFileSync(SAMPLE_MP3)), "the inline recording is the MP3 that was sent");
      } else assert.match(audio.url, new RegExp(`/v1/conversations/${CONVERSATION}/audio$`));
      assert.equal(lines.at(-1).type, "end");
      assert.equal(lines.at(-1).counts.conversation, 2);
      await page.getByText(/^Saved postcall-export-/).waitFor();
    }
  });

  await step("open a conversation: transcript, analysis, and an audio player that loads and seeks", async () => {
    await page.getByRole("link", { name: /Cracked screen replacement/ }).click();
    await page.getByRole("heading", { name: "Cracked screen replacement" }).waitFor();
    assert.equal(await page.getByRole("list", { name: "Transcript" }).getByRole("listitem").count(), 5);
    const analysis = await page.getByRole("region", { name: "Analysis" }).innerText();
    assert.match(analysis, /resolved\s*success/);
    assert.match(analysis, /mentioned_products\s*Phone X/);
    // The sample call is its own: its summary is the cracked screen's, not another call's.
    assert.match(analysis, /cracked screen on order 4471/);
    const turns = await page.getByRole("list", { name: "Transcript" }).innerText();
    assert.match(turns, /the caller liked this reply/);
    assert.match(turns, /Nothing transcribed: the speaker was cut off or said nothing\./);
    assert.doesNotMatch(turns, /\(no text\)|\bliked\b(?! this reply)/);
    const audio = page.locator("audio#player");
    await waitFor(() => audio.evaluate((a) => a.readyState >= 1 && a.duration > 10), "audio metadata", 20_000);
    // It really plays: the sample call is about 19 s, and time advances once it is started.
    const duration = await audio.evaluate((a) => a.duration);
    assert.ok(duration > 15 && duration < 25, `duration ${duration}`);
    await page.getByText(/^0:1\d · 19 KB MP3$/).waitFor();
    await audio.evaluate((a) => a.play());
    await waitFor(() => audio.evaluate((a) => a.currentTime > 0.5 && !a.paused), "playback to advance", 10_000);
    await audio.evaluate((a) => a.pause());
    const seeked = await seekTo(audio, 7.5);
    assert.ok(Math.abs(seeked - 7.5) < 0.5, `seeked to ${seeked}`);
    await page.getByText("Tool calls (1): lookup_order").click();
    await page.getByText("lookup_order").first().waitFor();
    await shot(page, "conversation", { fullPage: true });
  });

  await step("a long recording streams: the player seeks with Range requests through a signed link, nothing downloaded first", async () => {
    const requests = [];
    const onRequest = (r) => {
      if (r.url().includes(`/v1/conversations/${LONG}/audio?`)) requests.push({ range: r.headers()["range"] ?? null, auth: r.headers()["authorization"] ?? null });
    };
    page.on("request", onRequest);
    await page.goto(`${base}/console/#/conversations/${LONG}`);
    await page.getByRole("heading", { name: "A very long call" }).waitFor();
    const audio = page.locator("audio#player");
    await waitFor(() => audio.evaluate((a) => a.readyState >= 1 && a.duration > 7200), "the long recording's metadata", 30_000);
    assert.match(await audio.evaluate((a) => a.src), new RegExp(`/v1/conversations/${LONG}/audio\\?expires=\\d+&signature=[\\w-]+$`));
    await page.getByText(/^2:\d\d:\d\d · 8\.0 MB MP3$/).waitFor();
    const seeked = await seekTo(audio, 6000);
    assert.ok(Math.abs(seeked - 6000) < 1, `seeked to ${seeked}`);
    await audio.evaluate((a) => a.play());
    await waitFor(() => audio.evaluate((a) => a.currentTime > 6000.5 && !a.paused), "playback after the seek", 10_000);
    await audio.evaluate((a) => a.pause());
    page.off("request", onRequest);
    assert.ok(requests.length >= 2, `${requests.length} audio requests`);
    assert.ok(requests.every((r) => r.auth === null), "the player sends no API key");
    const starts = requests.map((r) => Number(/bytes=(\d+)-/.exec(r.range ?? "")?.[1] ?? -1));
    assert.ok(starts.some((n) => n > 4 * 1024 * 1024), `a Range request into the seeked-to part: ${JSON.stringify(requests)}`);
    // A link that no longer holds (as after 15 minutes) is renewed, and the recording plays on.
    await audio.evaluate((a) => (a.src = a.src.replace(/signature=[\w-]+/, "signature=forged")));
    await waitFor(() => audio.evaluate((a) => !a.src.includes("signature=forged") && a.readyState >= 1 && a.duration > 7200), "a renewed link", 20_000);
  });

  await step("a recording that is not MP3 says so, with a download link", async () => {
    await page.goto(`${base}/console/#/conversations/${NOISE}`);
    await page.getByText("This recording is not a playable MP3 (195 KB stored; it does not start like an MP3 file).", { exact: false }).waitFor();
    assert.equal(await page.locator("#audio-download").isVisible(), true);
    assert.equal(await page.locator("audio#player").isVisible(), false);
  });

  await step("full-text search links to the turn", async () => {
    await page.getByRole("link", { name: "Search transcripts" }).click();
    const current = () => page.getByRole("navigation", { name: "Main" }).locator('[aria-current="page"]').allInnerTexts();
    await waitFor(async () => JSON.stringify(await current()) === '["Search transcripts"]', "Search transcripts marked as the current page");
    // A placeholder reads as a hint, not as typed text.
    assert.equal(await page.getByLabel("Words").evaluate((el) => getComputedStyle(el, "::placeholder").fontStyle), "italic");
    await page.getByLabel("Words").fill("cracked scr");
    await page.keyboard.press("Enter");
    const hits = page.getByRole("list", { name: "Matching turns" }).getByRole("listitem");
    await hits.first().waitFor();
    assert.match(await hits.first().innerText(), /cracked/i);
    await shot(page, "search", { fullPage: true });
    await hits.first().getByRole("link").click();
    await page.locator(".turn.target").waitFor();
  });

  await step("forwarding failures: a refused event is listed, and Retry delivers it", async () => {
    const behave = (status) => fetch(`${receiver.url}/_behaviour`, { method: "POST", body: JSON.stringify({ path: "/pager", status }) });
    await behave(400);
    sample("failure");
    const auth = { headers: { Authorization: `Bearer ${API_KEY}` } };
    await waitFor(async () => (await (await fetch(`${base}/v1/forwarding/failures`, auth)).json()).failures.length === 1, "the dead letter");
    await page.getByRole("link", { name: "Forwarding failures" }).click();
    const items = page.getByRole("list", { name: "Forwarding failures" }).getByRole("listitem");
    await items.first().waitFor();
    assert.match(await items.first().innerText(), /call\.failed → pager[\s\S]*HTTP 400/);
    await shot(page, "forwarding-failures", { fullPage: true });
    await behave(200);
    await items.first().getByRole("button", { name: "Retry" }).click();
    await page.getByText(/Queued again/).waitFor();
    await waitFor(() => receiver.received().some((d) => d.path === "/pager" && d.status === 200 && d.verified), "the retried delivery");
    await waitFor(async () => (await (await fetch(`${base}/v1/forwarding/failures`, auth)).json()).failures.length === 0, "the dead letter removed");
    await page.reload();
    // Forwarding is on (one destination): the empty list means nothing failed, and says so.
    await page.getByText("No failed deliveries: every event forwarded to the 1 destination in FORWARD_DESTINATIONS was accepted, or is still being retried.").waitFor();
  });

  await step("empty pages say why: no ELEVENLABS_API_KEY on Imports", async () => {
    await page.getByRole("link", { name: "Imports" }).click();
    await page.locator("#imports-no-key").waitFor();
    assert.match(await page.locator("#imports-no-key").innerText(), /^ELEVENLABS_API_KEY is not set: an import cannot fetch anything/);
    assert.equal(await page.locator("#imports-empty").innerText(), "No imports yet.");
  });

  await step("a recording whose transcript has not come yet: the page shows what is known", async () => {
    await page.goto(`${base}/console/#/conversations/${AUDIO_ONLY}`);
    await page.locator("#transcript-pending").waitFor();
    assert.match(await page.locator("#transcript-pending").innerText(), /The recording has arrived, the transcript has not/);
    assert.equal(await page.getByRole("heading", { name: "Something went wrong" }).count(), 0);
    const audio = page.locator("audio#player");
    await waitFor(() => audio.evaluate((a) => a.readyState >= 1 && a.duration > 10), "the early recording's metadata", 20_000);
    await shot(page, "conversation-audio-only", { fullPage: true });
    // A conversation nothing is known about says so, calmly.
    await page.goto(`${base}/console/#/conversations/conv_e2e_never_sent`);
    await page.getByText("postcall has nothing stored for this conversation").waitFor();
    assert.equal(await page.getByRole("heading", { name: "Something went wrong" }).count(), 0);
  });

  await step("phone width: every page is readable at 375 px", async () => {
    const phone = await browser.newContext({ viewport: { width: 375, height: 812 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const p = await phone.newPage();
    await p.goto(`${base}/console/`);
    await p.getByLabel("API key").waitFor();
    assert.equal(await p.locator("#nav").isVisible(), false, "the nav is visible on the sign-in page at phone width");
    await shot(p, "sign-in-phone");
    await p.getByLabel("API key").fill(API_KEY);
    await p.keyboard.press("Enter");
    await p.getByRole("link", { name: new RegExp(USER) }).waitFor();
    await shot(p, "users-phone", { fullPage: true });
    // The navigation is one line beside the brand (it scrolls sideways), not three.
    const bar = await p.evaluate(() => {
      const links = [...document.querySelectorAll("#nav a, #nav button")].map((e) => e.getBoundingClientRect().top);
      return { header: document.querySelector("header.top").getBoundingClientRect().height, rows: new Set(links.map((t) => Math.round(t))).size };
    });
    assert.equal(bar.rows, 1, `navigation rows at 375 px: ${bar.rows}`);
    assert.ok(bar.header < 64, `header height ${bar.header} px at 375 px`);
    const noOverflow = () => p.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1);
    assert.ok(await noOverflow(), "users page overflows at 375 px");
    await p.goto(`${base}/console/#/users/${USER}`);
    await p.getByRole("heading", { name: "Next call: dynamic variables" }).waitFor();
    assert.ok(await noOverflow(), "user page overflows at 375 px");
    await shot(p, "user-phone", { fullPage: true });
    await p.goto(`${base}/console/#/conversations/${CONVERSATION}`);
    await p.getByRole("heading", { name: "Cracked screen replacement" }).waitFor();
    assert.ok(await noOverflow(), "conversation page overflows at 375 px");
    await shot(p, "conversation-phone", { fullPage: true });
    await phone.close();
  });

  await step("keyboard only: sign out, sign in and reach a user with Tab and Enter", async () => {
    const k = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const p = await k.newPage();
    await p.goto(`${base}/console/`);
    await p.keyboard.type(API_KEY); // the key field has focus on arrival
    await p.keyboard.press("Enter");
    await p.getByRole("link", { name: new RegExp(USER) }).waitFor();
    for (let i = 0; i < 30; i++) {
      await p.keyboard.press("Tab");
      const focused = await p.evaluate(() => document.activeElement?.textContent ?? "");
      if (focused.includes(USER)) break;
    }
    await p.keyboard.press("Enter");
    await p.getByRole("heading", { name: "Next call: dynamic variables" }).waitFor();
    await k.close();
  });

  await step("an unattributed conversation is listed and the operator attributes it", async () => {
    await waitFor(async () => {
      const res = await fetch(`${base}/v1/conversations?unattributed=true`, { headers: { Authorization: `Bearer ${API_KEY}` } });
      return (await res.json()).conversations?.some((c) => c.claimed_user_id === "e2e-claimer");
    }, "the unattributed conversation in D1");
    await page.goto(`${base}/console/#/unattributed`);
    await page.getByRole("heading", { name: "Unattributed conversations" }).waitFor();
    await page.getByRole("link", { name: /Claimed without a token/ }).click();
    await page.getByText("Claimed user id e2e-claimer, not believed: no postcall_user_token came with the call.").waitFor();
    await shot(page, "unattributed-conversation", { fullPage: true });
    await page.getByLabel("Attribute to user").fill("e2e-claimer");
    await page.getByRole("button", { name: "Attribute" }).click();
    await page.getByText("Attributed to e2e-claimer").waitFor();
    const res = await fetch(`${base}/v1/users/e2e-claimer/context`, { headers: { Authorization: `Bearer ${API_KEY}` } });
    assert.equal((await res.json()).dynamic_variables.call_count, 1);
  });

  await step("delete the user, with confirmation", async () => {
    await page.goto(`${base}/console/#/users/${USER}`);
    await page.getByRole("button", { name: "Delete this user…" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Cancel" }).click();
    assert.equal(await page.getByRole("dialog").isVisible(), false);
    await page.getByRole("button", { name: "Delete this user…" }).click();
    await page.getByRole("button", { name: "Delete everything" }).click();
    await page.getByRole("heading", { name: `${USER} was deleted` }).waitFor();
    // The erasure's record, right on the page: its state and counts, and the user only as a keyed hash.
    const card = page.getByRole("region", { name: /^Erasure era_/ });
    await card.getByRole("heading", { name: "Done" }).waitFor();
    assert.match(await card.getByRole("row", { name: /D1 conversations/ }).innerText(), /[1-9]/);
    assert.equal((await card.innerText()).includes(USER), false, "the record names the user in clear");
    const res = await fetch(`${base}/v1/users/${USER}/context`, { headers: { Authorization: `Bearer ${API_KEY}` } });
    assert.equal((await res.json()).dynamic_variables.call_count, 0);
    const audio = await fetch(`${base}/v1/conversations/${CONVERSATION}/audio`, { headers: { Authorization: `Bearer ${API_KEY}` } });
    assert.equal(audio.status, 404);
    await page.getByRole("link", { name: "Back to users" }).click();
    await page.getByRole("link", { name: /e2e-other-user/ }).waitFor();
    assert.equal(await page.getByRole("link", { name: new RegExp(USER) }).count(), 0);
  });

  await step("the erasures page lists the deletion, finds it by the typed user id, and opens its record", async () => {
    await page.goto(`${base}/console/#/erasures`);
    await page.getByRole("heading", { name: "Erasures" }).waitFor();
    const list = page.getByRole("list", { name: "Erasures" });
    await list.getByRole("link").first().waitFor();
    await page.getByLabel("Find a user's erasures by their id").fill("e2e-nobody-was-erased");
    await page.getByRole("button", { name: "Find" }).click();
    await page.getByText("No erasure of this user id.").waitFor();
    await page.getByLabel("Find a user's erasures by their id").fill(USER);
    await page.getByRole("button", { name: "Find" }).click();
    await list.getByRole("link").first().waitFor();
    assert.equal(await list.getByRole("link").count(), 1);
    await list.getByRole("link").first().click();
    await page.getByRole("region", { name: /^Erasure era_/ }).getByRole("heading", { name: "Done" }).waitFor();
    await shot(page, "erasure-record");
  });

  await step("an expired key signs the browser out with a message", async () => {
    await page.evaluate(() => sessionStorage.setItem("postcall.apiKey", "rotated-out-key"));
    await page.reload();
    await page.getByText("Your API key was rejected").waitFor();
  });

  assert.deepEqual(consoleErrors, [], "uncaught errors in the page");
  console.log(`\n${steps.length} browser checks passed${WRITE_SHOTS ? `; screenshots in ${SHOTS}/` : " (SCREENSHOTS=1 writes screenshots)"}`);
  await finish({ browser, server, state });
} catch (err) {
  await finish({ err, browser, server, state });
} finally {
  await receiver.close();
}
