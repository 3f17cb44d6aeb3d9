// What `npm run send-sample` says when it cannot go on: the words depend on what was asked, so a
// newcomer is pointed at the real cause (scripts/send-sample.mjs).

/** Why there is no webhook secret to sign with. `given` is --secret's value (undefined: not passed). */
export function noSecretMessage(given) {
  if (given === "")
    return '--secret was given an empty value (is the shell variable in --secret "$SECRET" set?). Pass the Worker\'s ELEVENLABS_WEBHOOK_SECRET.';
  return "No webhook secret: pass --secret, set ELEVENLABS_WEBHOOK_SECRET, or create .dev.vars (npm start does).";
}

const LOCAL = new Set(["localhost", "127.0.0.1", "[::1]", "::1", "0.0.0.0"]);

/** What to check when `base` could not be reached: the local service, or the URL and the deployment. */
export function unreachableMessage(base, reason) {
  let host = "";
  try {
    host = new URL(base).hostname;
  } catch {
    return `${JSON.stringify(base)} is not a URL: pass --url https://... (or set POSTCALL_URL).`;
  }
  const local = LOCAL.has(host);
  const hint = local
    ? `Is the service running (npm start)${new URL(base).port && new URL(base).port !== "8787" ? ` on port ${new URL(base).port}` : ""}?`
    : "Check the URL, and that the Worker is deployed (npx wrangler deploy) and reachable from here.";
  return `Could not reach ${base}: ${reason}. ${hint}`;
}
