// Helpers shared by the browser tests (test-e2e/*.e2e.mjs). Not a test itself: the name does not
// end in .e2e.mjs.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { chromium } from "playwright-core";

/** A TCP port free on 127.0.0.1 right now. */
export const freePort = () =>
  new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = /** @type {import("node:net").AddressInfo} */ (srv.address());
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });

/** A valid MP3 of `seconds` of silence: MPEG-1 Layer III frames (128 kb/s, 44.1 kHz) with empty side info. */
export function silentMp3(seconds) {
  const frame = Buffer.alloc(417);
  frame.set([0xff, 0xfb, 0x90, 0x64]);
  return Buffer.concat(Array.from({ length: Math.ceil((seconds * 44100) / 1152) }, () => frame));
}

/** Polls `fn` every 200 ms until it returns true (errors count as "not yet"). */
export async function waitFor(fn, what, ms = 30_000) {
  const until = Date.now() + ms;
  for (;;) {
    try {
      if (await fn()) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** `step(name, fn)` prints one line per check; `steps` lists those that passed. */
export function stepper() {
  const steps = [];
  async function step(name, fn) {
    process.stdout.write(`- ${name} ... `);
    await fn();
    steps.push(name);
    console.log("ok");
  }
  return { step, steps };
}

/** The browser the tests drive: Debian's chromium, or CHROMIUM. Exits 2 with the fix when it is missing. */
export function requireChromium() {
  const path = process.env.CHROMIUM ?? "/usr/bin/chromium";
  if (!existsSync(path)) {
    console.error(`No browser at ${path}. Install Debian's chromium (apt-get install -y chromium) or set CHROMIUM.`);
    process.exit(2);
  }
  return path;
}

/** Headless chromium, as every browser test launches it (`extraArgs`: more switches). */
export const launchBrowser = (executablePath, extraArgs = []) =>
  chromium.launch({ executablePath, args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", ...extraArgs] });

const devEnv = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", CI: "true" };
const WRANGLER = "node_modules/wrangler/bin/wrangler.js";

/**
 * `wrangler dev` on 127.0.0.1:`port` with its state in `state` (D1's migrations applied first) and
 * `vars` (name -> value) as --var settings; resolves with the child process once /health answers.
 */
export async function startWorker({ state, port, vars }) {
  const migrate = spawnSync(process.execPath, [WRANGLER, "d1", "migrations", "apply", "DB", "--local", "--persist-to", state], { env: devEnv, encoding: "utf8" });
  if (migrate.status !== 0) throw new Error(`migrations failed:\n${migrate.stdout}\n${migrate.stderr}`);
  const server = spawn(
    process.execPath,
    [
      WRANGLER, "dev", "--ip", "127.0.0.1", "--port", String(port), "--persist-to", state, "--log-level", "warn",
      ...Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
    ],
    { env: devEnv, stdio: ["ignore", "inherit", "inherit"] },
  );
  await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/health`)).ok, "wrangler dev");
  return server;
}

/** What every browser test does last: report a failure, then close the browser, stop the Worker, remove its state. */
export async function finish({ err, browser, server, state }) {
  if (err !== undefined) {
    console.error(`\nFAILED: ${err instanceof Error ? (err.stack ?? err.message) : err}`);
    process.exitCode = 1;
  }
  await browser?.close().catch(() => {});
  server?.kill("SIGTERM");
  rmSync(state, { recursive: true, force: true });
}
