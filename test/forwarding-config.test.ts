/**
 * FORWARD_DESTINATIONS and FORWARD_SIGNING_SECRET (src/lib/forwarding-config.ts): a malformed setting is
 * a 500 `misconfigured` naming it, as every setting is; and the signing matches the Standard Webhooks
 * scheme computed independently with Web Crypto (the package runs in workerd: this test runs there).
 */
import { describe, expect, it } from "vitest";
import { Webhook } from "standardwebhooks";
import { ConfigError, parseConfig } from "../src/lib/config";
import type { Env } from "../src/lib/env";
import { signedHeaders } from "../src/lib/standard-webhooks";

const SECRET = `whsec_${btoa("a-forwarding-secret-of-32-bytes!")}`;
const OTHER = `whsec_${btoa("another-secret-for-key-rotation!")}`;
const base = { FORWARD_SIGNING_SECRET: SECRET } as unknown as Env;
const cfg = (patch: Record<string, string | undefined>) => parseConfig({ ...base, ...patch } as Env);
const dest = (d: object) => JSON.stringify([d]);

function misconfigured(patch: Record<string, string | undefined>, setting: string, fragment: string) {
  try {
    cfg(patch);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const e = err as ConfigError;
    expect([e.status, e.code]).toEqual([500, "misconfigured"]);
    expect(e.message).toContain(setting);
    expect(e.message).toContain(fragment);
    return;
  }
  throw new Error(`expected ${JSON.stringify(patch)} to be refused`);
}

describe("FORWARD_DESTINATIONS", () => {
  it("is off when unset or an empty array", () => {
    expect(cfg({}).forwardDestinations).toEqual([]);
    expect(cfg({ FORWARD_DESTINATIONS: "[]" }).forwardDestinations).toEqual([]);
    expect(parseConfig({} as Env).forwardSigningSecrets).toEqual([]);
  });

  it("parses destinations, keyed by name or URL", () => {
    const d = cfg({
      FORWARD_DESTINATIONS: JSON.stringify([
        { name: "crm", url: "https://crm.example.com/hook", events: ["conversation.stored", "user.erased"], include_transcript: true },
        { url: "http://127.0.0.1:9999/local", events: ["call.failed"] },
        { url: "http://localhost:9999/x", events: ["audio.stored"] },
      ]),
    }).forwardDestinations;
    expect(d).toEqual([
      { key: "crm", name: "crm", url: "https://crm.example.com/hook", events: ["conversation.stored", "user.erased"], includeTranscript: true },
      { key: "http://127.0.0.1:9999/local", name: null, url: "http://127.0.0.1:9999/local", events: ["call.failed"], includeTranscript: false },
      { key: "http://localhost:9999/x", name: null, url: "http://localhost:9999/x", events: ["audio.stored"], includeTranscript: false },
    ]);
  });

  it.each([
    ["not JSON", "[{", "is not valid JSON"],
    ["not an array", '{"url": "https://x.example"}', "must be a JSON array"],
    ["an entry that is not an object", "[1]", "entry 0 must be an object"],
    ["a missing url", dest({ events: ["call.failed"] }), "needs a `url`"],
    ["a url that is not one", dest({ url: "not a url", events: ["call.failed"] }), "not a URL"],
    ["plain http to another host", dest({ url: "http://crm.example.com/hook", events: ["call.failed"] }), "must use https"],
    ["another scheme", dest({ url: "ftp://crm.example.com/hook", events: ["call.failed"] }), "must use https"],
    ["credentials in the url", dest({ url: "https://u:p@crm.example.com/", events: ["call.failed"] }), "credentials"],
    ["no events", dest({ url: "https://x.example", events: [] }), "non-empty array"],
    ["an unknown event", dest({ url: "https://x.example", events: ["conversation.created"] }), 'unknown event "conversation.created"'],
    ["a bad name", dest({ name: "a b", url: "https://x.example", events: ["call.failed"] }), "`name`"],
    ["a non-boolean include_transcript", dest({ url: "https://x.example", events: ["call.failed"], include_transcript: "yes" }), "include_transcript"],
    ["an unknown field", dest({ url: "https://x.example", events: ["call.failed"], secret: "x" }), 'unknown field "secret"'],
    [
      "the same destination twice",
      JSON.stringify([{ url: "https://x.example/", events: ["call.failed"] }, { url: "https://x.example/", events: ["user.erased"] }]),
      "twice",
    ],
  ])("refuses %s", (_what, value, fragment) => misconfigured({ FORWARD_DESTINATIONS: value }, "FORWARD_DESTINATIONS", fragment));
});

describe("FORWARD_SIGNING_SECRET", () => {
  it("is required once a destination is configured (no unsigned deliveries)", () => {
    misconfigured({ FORWARD_SIGNING_SECRET: undefined, FORWARD_DESTINATIONS: dest({ url: "https://x.example", events: ["call.failed"] }) }, "FORWARD_SIGNING_SECRET", "required");
  });

  it.each([
    ["no whsec_ prefix", btoa("a-forwarding-secret-of-32-bytes!"), "whsec_"],
    ["not base64", "whsec_not*base64!", "base64"],
    ["too short a key", `whsec_${btoa("short")}`, "too short"],
  ])("refuses %s", (_what, value, fragment) => misconfigured({ FORWARD_SIGNING_SECRET: value }, "FORWARD_SIGNING_SECRET", fragment));

  it("takes several, comma-separated, for rotation", () => {
    expect(cfg({ FORWARD_SIGNING_SECRET: ` ${SECRET} , ${OTHER} ` }).forwardSigningSecrets).toEqual([SECRET, OTHER]);
  });
});

describe("Standard Webhooks signing in workerd", () => {
  async function webCryptoSignature(secret: string, content: string): Promise<string> {
    const key = await crypto.subtle.importKey("raw", Uint8Array.from(atob(secret.slice(6)), (c) => c.charCodeAt(0)), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(content)));
    return `v1,${btoa(String.fromCharCode(...mac))}`;
  }

  it("signs <id>.<timestamp>.<body> with each secret, space-separated, as an independent HMAC does", async () => {
    const body = JSON.stringify({ id: "evt_1", type: "call.failed", data: { text: "héllo ✓" } });
    const h = signedHeaders([SECRET, OTHER], "evt_1", 1_764_000_000, body);
    expect(h["webhook-id"]).toBe("evt_1");
    expect(h["webhook-timestamp"]).toBe("1764000000");
    expect(h["webhook-signature"]).toBe(
      `${await webCryptoSignature(SECRET, `evt_1.1764000000.${body}`)} ${await webCryptoSignature(OTHER, `evt_1.1764000000.${body}`)}`,
    );
  });

  it("verifies with the package itself, and fails once anything is changed", () => {
    const now = Math.floor(Date.now() / 1000);
    const body = '{"id":"evt_2"}';
    const h = signedHeaders([SECRET], "evt_2", now, body);
    expect(new Webhook(SECRET).verify(body, h)).toEqual({ id: "evt_2" });
    expect(() => new Webhook(SECRET).verify('{"id":"evt_3"}', h)).toThrow();
    expect(() => new Webhook(OTHER).verify(body, h)).toThrow();
  });
});

describe("forwarding retries", () => {
  it("back off from FORWARD_RETRY_BASE_SECONDS, doubling, jittered ±20%, capped at an hour, and honour Retry-After", async () => {
    const { retryDelaySeconds, parseRetryAfter } = await import("../src/forwarding/deliver");
    for (let attempt = 1; attempt <= 14; attempt++) {
      const nominal = Math.min(3600, 5 * 2 ** (attempt - 1));
      const d = retryDelaySeconds(5, attempt);
      expect(d).toBeGreaterThanOrEqual(Math.floor(nominal * 0.8));
      expect(d).toBeLessThanOrEqual(Math.min(3600, Math.ceil(nominal * 1.2)));
    }
    expect(retryDelaySeconds(5, 3, 120)).toBe(120);
    expect(retryDelaySeconds(5, 3, 99_999)).toBe(3600);
    expect(parseRetryAfter("30", 0)).toBe(30);
    expect(parseRetryAfter(new Date(90_000).toUTCString(), 0)).toBe(90);
    expect(parseRetryAfter("soon", 0)).toBeNull();
    expect(parseRetryAfter(null, 0)).toBeNull();
  });
});
