// A local receiver for forwarded events (docs/forwarding.md): a plain Node HTTP server that verifies
// each delivery's Standard Webhooks signature with the `standardwebhooks` package and records it.
// Used by `npm run send-sample -- forward-receiver`, by `npm run forward-load`, and by the forwarding
// tests (test/global/forward-receiver.ts), so all three check deliveries the same way.
//
// Any path is a destination (`/crm`, `/a`, ...). Control endpoints, for tests and scripts:
//   GET  /_received?path=/a     what arrived at /a (every attempt, with `verified`), oldest first
//   POST /_behaviour            {"path": "/a", "status": 500} answers 500 from now on (200 restores);
//                               {"path": "/a", "failFirst": 2} answers 503 to the first 2 attempts of each webhook-id
//                               (`failStatus` another status); {"path": "/a", "hangFirst": 1, "hangMs": 4000} answers
//                               the first attempt of each webhook-id only after 4 s (recorded with status 0)
//   POST /_verify               {"headers": {...}, "body": "..."} -> {"verified": bool} (checks a tampered copy)
//   POST /_reset                forgets everything
import { createServer } from "node:http";
import { Webhook } from "standardwebhooks";

/**
 * Starts the receiver. `secrets`: the FORWARD_SIGNING_SECRET values (whsec_...); a delivery is
 * verified when every secret's signature is present and valid (rotation: one signature per secret).
 */
export function startReceiver({ port = 0, host = "127.0.0.1", secrets, onDelivery } = {}) {
  const hooks = secrets.map((s) => new Webhook(s));
  let received = [];
  let behaviour = new Map();
  let attemptsById = new Map();

  const verify = (headers, body) => {
    const results = hooks.map((h) => {
      try {
        h.verify(body, headers);
        return true;
      } catch {
        return false;
      }
    });
    return { verified: results.length > 0 && results.every(Boolean), bySecret: results };
  };

  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const url = new URL(req.url ?? "/", "http://receiver");
      const reply = (status, value) => {
        res.writeHead(status, { "Content-Type": "application/json" });
        res.end(JSON.stringify(value));
      };
      if (url.pathname === "/_received") {
        const path = url.searchParams.get("path");
        return reply(200, path === null ? received : received.filter((r) => r.path === path));
      }
      if (url.pathname === "/_behaviour" && req.method === "POST") {
        const b = JSON.parse(body);
        behaviour.set(b.path, { status: b.status ?? 200, failFirst: b.failFirst ?? 0, failStatus: b.failStatus ?? 503, hangFirst: b.hangFirst ?? 0, hangMs: b.hangMs ?? 0 });
        return reply(200, { ok: true });
      }
      if (url.pathname === "/_verify" && req.method === "POST") {
        const b = JSON.parse(body);
        return reply(200, verify(b.headers, b.body));
      }
      if (url.pathname === "/_reset" && req.method === "POST") {
        received = [];
        behaviour = new Map();
        attemptsById = new Map();
        return reply(200, { ok: true });
      }
      const headers = {
        "webhook-id": req.headers["webhook-id"] ?? "",
        "webhook-timestamp": req.headers["webhook-timestamp"] ?? "",
        "webhook-signature": req.headers["webhook-signature"] ?? "",
      };
      const check = verify(headers, body);
      const id = headers["webhook-id"];
      const key = `${url.pathname} ${id}`;
      const attempt = (attemptsById.get(key) ?? 0) + 1;
      attemptsById.set(key, attempt);
      const b = behaviour.get(url.pathname) ?? { status: 200, failFirst: 0, failStatus: 503, hangFirst: 0, hangMs: 0 };
      const hang = check.verified && attempt <= b.hangFirst;
      const status = !check.verified ? 401 : hang ? 0 : attempt <= b.failFirst ? b.failStatus : b.status;
      let event = null;
      try {
        event = JSON.parse(body);
      } catch {}
      const record = { path: url.pathname, id, attempt, status, verified: check.verified, bySecret: check.bySecret, headers, body, event, at: Date.now() };
      received.push(record);
      onDelivery?.(record);
      if (hang) setTimeout(() => reply(200, { received: false, late: true }), b.hangMs);
      else reply(status, { received: status < 300 });
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const address = server.address();
      resolve({
        port: address.port,
        url: `http://${host}:${address.port}`,
        received: () => received,
        close: () => new Promise((r) => server.close(() => r())),
      });
    });
  });
}
