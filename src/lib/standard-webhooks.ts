/**
 * Standard Webhooks signing (https://www.standardwebhooks.com), with the `standardwebhooks` package,
 * which runs in workerd as it is (pure JS: its HMAC is fast-sha256, no Node Buffer needed;
 * test/forwarding/signing.test.ts checks it there against a Web Crypto HMAC). The signature is
 * `v1,<base64 HMAC-SHA256(key = base64-decoded secret after "whsec_", "<id>.<timestamp>.<body>")>`;
 * with several secrets (rotation) `webhook-signature` carries one per secret, space-separated, and a
 * receiver that knows any one of them verifies.
 */
import { Webhook } from "standardwebhooks";

const hooks = new Map<string, Webhook>();

function hook(secret: string): Webhook {
  let h = hooks.get(secret);
  if (!h) {
    h = new Webhook(secret);
    hooks.set(secret, h);
  }
  return h;
}

/** The three headers of a delivery: `webhook-id`, `webhook-timestamp` (Unix seconds), `webhook-signature`. */
export function signedHeaders(secrets: string[], id: string, timestampSeconds: number, body: string): Record<string, string> {
  const at = new Date(timestampSeconds * 1000);
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestampSeconds),
    "webhook-signature": secrets.map((s) => hook(s).sign(id, at, body)).join(" "),
  };
}
