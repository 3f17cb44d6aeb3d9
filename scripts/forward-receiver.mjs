#!/usr/bin/env node
// `npm run send-sample -- forward-receiver [--port 8799] [--secret whsec_...] [--fail-status 500]`:
// a local receiver for postcall's forwarded events (docs/forwarding.md). It verifies each delivery's
// Standard Webhooks signature with the `standardwebhooks` package (as your CRM would), prints what
// arrived, and answers 200 (or --fail-status, to watch retries and dead letters).
//
// The secret is FORWARD_SIGNING_SECRET from --secret, the environment, or .dev.vars (.dev.vars.example).
import { existsSync, readFileSync } from "node:fs";
import { startReceiver } from "./lib/forward-receiver.mjs";

export async function runReceiver(opts) {
  // What `npm start` reads (.dev.vars, which it creates from .dev.vars.example on its first run).
  const fromFile = (() => {
    const file = [".dev.vars", ".dev.vars.example"].find((f) => existsSync(f));
    if (!file) return "";
    const m = /^\s*FORWARD_SIGNING_SECRET\s*=\s*"?([^"\n]*)"?\s*$/m.exec(readFileSync(file, "utf8"));
    return m ? m[1] : "";
  })();
  const secrets = (opts.secret ?? process.env.FORWARD_SIGNING_SECRET ?? fromFile)
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (secrets.length === 0) {
    console.error(
      "No FORWARD_SIGNING_SECRET: pass --secret whsec_..., or add it to .dev.vars (see .dev.vars.example) and restart npm start.",
    );
    process.exit(2);
  }
  const port = Number(opts.port ?? 8799);
  const seen = new Set();
  const receiver = await startReceiver({
    port,
    secrets,
    onDelivery: (d) => {
      const again = seen.has(`${d.path} ${d.id}`) ? " (a webhook-id seen before: deduplicate on it)" : "";
      if (d.status < 300) seen.add(`${d.path} ${d.id}`);
      const mark = d.verified ? "signature ok" : "SIGNATURE INVALID";
      console.log(`\n${new Date().toISOString()} POST ${d.path} webhook-id ${d.id} attempt ${d.attempt}: ${mark} -> ${d.status}${again}`);
      console.log(d.event ? JSON.stringify(d.event, null, 2) : d.body.slice(0, 2000));
    },
  });
  if (opts.failStatus) {
    await fetch(`${receiver.url}/_behaviour`, { method: "POST", body: JSON.stringify({ path: "/", status: Number(opts.failStatus) }) });
  }
  const url = `${receiver.url}/`;
  const all = ["conversation.stored", "audio.stored", "call.failed", "user.erased"];
  const destinations = JSON.stringify([{ name: "local", url, events: all, include_transcript: true }]);
  console.log(`Forward receiver listening on ${url} (verifying with ${secrets.length} secret(s)).`);
  console.log(`Start postcall forwarding here, in another terminal:\n\n  npm start -- --var 'FORWARD_DESTINATIONS:${destinations}'\n`);
  console.log("Then send events: npm run send-sample -- all\n");
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => receiver.close().then(() => process.exit(0)));
}
