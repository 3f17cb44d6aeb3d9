#!/usr/bin/env node
// The first run, as a new user meets it, on a fresh clone of the committed tree (node_modules is
// linked from this checkout: the install itself is `npm ci`, which CI runs):
// - every shell line of the README's code blocks parses in bash (no `<placeholder>` redirects);
// - `npm start` on a port that is taken stops at once and says what to do, instead of drifting;
// - `PORT=<p> npm start` prints the URL it really serves, and the README's "See the loop work"
//   commands, pasted as written, reach that same server (send-sample honours PORT too).
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stepper } from "./lib.mjs";

const repo = new URL("..", import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), "postcall-first-run-"));
const clone = join(work, "postcall");
const env = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" };
delete env.PORT;

const listen = (port) =>
  new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(port, "127.0.0.1", () => resolve(srv));
  });
const freePort = async () => {
  const srv = await listen(0);
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
};

/** fetch, once more if the server closed a kept-alive connection while the test was busy elsewhere. */
async function get(url, init) {
  try {
    return await fetch(url, init);
  } catch (err) {
    if (err?.cause?.code !== "UND_ERR_SOCKET") throw err;
    return fetch(url, init);
  }
}

const { step, steps } = stepper();

/** The lines of the README's ```sh blocks, comments stripped. */
function readmeShellLines(readme) {
  const lines = [];
  for (const block of readme.matchAll(/```(?:sh|bash)\n([\s\S]*?)```/g)) {
    for (const raw of block[1].split("\n")) {
      const line = raw.replace(/\s+#.*$/, "").trim();
      if (line !== "" && !line.startsWith("#")) lines.push(line);
    }
  }
  return lines;
}

let server;
let serverOutput = "";
try {
  await step("a fresh clone of the committed tree", async () => {
    const r = spawnSync("git", ["clone", "--quiet", repo, clone], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    symlinkSync(join(repo, "node_modules"), join(clone, "node_modules"));
    assert.equal(existsSync(join(clone, ".dev.vars")), false);
  });

  const readme = readFileSync(join(clone, "README.md"), "utf8");

  await step("every README shell line pastes into bash: it parses, and has no <placeholder> redirect", async () => {
    const lines = readmeShellLines(readme);
    assert.ok(lines.length > 20, `only ${lines.length} shell lines found`);
    for (const line of lines) {
      const r = spawnSync("bash", ["-n", "-c", line], { encoding: "utf8" });
      assert.equal(r.status, 0, `bash cannot parse: ${line}\n${r.stderr}`);
      assert.doesNotMatch(line, /<[A-Za-z][^>]*>/, `a placeholder bash reads as a redirect: ${line}`);
    }
  });

  await step("npm start on a taken port stops at once and says which port to use instead", async () => {
    const port = await freePort();
    const blocker = await listen(port);
    try {
      const r = spawnSync("npm", ["start", "--silent"], { cwd: clone, env: { ...env, PORT: String(port) }, encoding: "utf8", timeout: 60_000 });
      assert.equal(r.status, 1, `exit ${r.status}\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, new RegExp(`port ${port} is already in use`));
      assert.match(r.stderr, /PORT=\d+ npm start/);
      assert.match(r.stderr, /PORT=\d+ npm run send-sample/);
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });

  const port = await freePort();
  const base = `http://localhost:${port}`;
  await step(`PORT=${port} npm start serves there and says so`, async () => {
    server = spawn("npm", ["start", "--silent"], { cwd: clone, env: { ...env, PORT: String(port) }, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    server.stdout.on("data", (d) => (serverOutput += d));
    server.stderr.on("data", (d) => (serverOutput += d));
    const until = Date.now() + 90_000;
    while (!serverOutput.includes("postcall is running on")) {
      if (server.exitCode !== null) throw new Error(`npm start exited ${server.exitCode}`);
      if (Date.now() > until) throw new Error("no banner after 90 s");
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.match(serverOutput, /Created \.dev\.vars from \.dev\.vars\.example/);
    // The migrations in one line, not wrangler's table redrawn after each one.
    assert.equal(serverOutput.match(/D1 \(local\): applied \d+ migrations \(0001_initial\.sql … \S+\)\./g)?.length, 1, serverOutput);
    assert.doesNotMatch(serverOutput, /┌|0002_phone_links_retention\.sql/);
    assert.match(serverOutput, new RegExp(`postcall is running on ${base} \\(console: ${base}/console/\\)\\. In another terminal: PORT=${port} npm run send-sample`));
    assert.equal((await get(`${base}/health`)).status, 200);
    assert.equal((await get(`${base}/favicon.ico`)).status, 200);
  });

  await step("the README's 'See the loop work' commands, pasted as written, reach that server", async () => {
    const section = readme.slice(readme.indexOf("### See the loop work"), readme.indexOf("## How it works"));
    const lines = readmeShellLines(section);
    const local = lines.filter((l) => !l.includes("--url") && !l.includes("--audio-mb"));
    assert.ok(local.length >= 6, `only ${local.length} local commands`);
    for (const line of local) {
      // The one change a reader makes: they started on PORT, so the curl line's 8787 is theirs.
      const pasted = line.replaceAll("localhost:8787", `localhost:${port}`);
      const r = spawnSync("bash", ["-c", pasted], { cwd: clone, env: { ...env, PORT: String(port) }, encoding: "utf8", timeout: 60_000 });
      assert.equal(r.status, 0, `failed: ${pasted}\n${r.stdout}\n${r.stderr}`);
      assert.doesNotMatch(r.stdout + r.stderr, /Could not reach/, pasted);
    }
    // The sample audio is the spoken recording, and it is stored whole.
    const audioLine = local.find((l) => l.includes("audio --conversation"));
    const id = /--conversation (\S+)/.exec(audioLine)[1];
    const res = await get(`${base}/v1/conversations/${id}/audio`, { headers: { Authorization: "Bearer local-dev-api-key" } });
    assert.equal(res.status, 200);
    const mp3 = Buffer.from(await res.arrayBuffer());
    assert.ok(mp3.equals(readFileSync(join(clone, "test/fixtures/sample-call.mp3"))), "the stored audio is the sample recording");
  });

  console.log(`\n${steps.length} first-run checks passed`);
} catch (err) {
  console.error(`\nFAILED: ${err instanceof Error ? (err.stack ?? err.message) : err}${err?.cause ? `\ncause: ${err.cause.stack ?? err.cause}` : ""}`);
  if (serverOutput) console.error(`\nnpm start printed:\n${serverOutput.slice(-4000)}`);
  process.exitCode = 1;
} finally {
  if (server && server.exitCode === null) {
    try {
      process.kill(-server.pid, "SIGTERM");
    } catch {
      /* already gone */
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  rmSync(work, { recursive: true, force: true });
}
