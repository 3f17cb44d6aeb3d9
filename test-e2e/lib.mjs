// Helpers shared by the browser tests (test-e2e/*.e2e.mjs). Not a test itself: the name does not
// end in .e2e.mjs.
import { createServer } from "node:net";

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
