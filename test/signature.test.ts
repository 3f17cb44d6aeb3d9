import { describe, expect, it, vi } from "vitest";
import { checkHeader, hmacKey, parseSignatureHeader, sign, verifySignature, type VerifyOptions } from "../src/webhooks/signature";
import { verifyOptions } from "../src/webhooks/handler";
import { parseConfig } from "../src/lib/config";
import { ApiError } from "../src/lib/errors";

const enc = new TextEncoder();
const KAV_BODY = '{"event_type": "speech.completed", "id": "123456"}';
const KAV_MAC = "f8a0d1dc33ee963cb54d2f31514555995e93313c9d2042c030adbb82b87fae13";
const T = 1_600_000_000;

const opts = (over: Partial<VerifyOptions> = {}): VerifyOptions => ({
  secrets: ["test_secret"],
  nowSeconds: T,
  maxAgeSeconds: 1800,
  maxFutureSeconds: 300,
  ...over,
});

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string | null> {
  try {
    await (typeof p === "function" ? p() : p);
    return null;
  } catch (e) {
    if (e instanceof ApiError) return `${e.status} ${e.code}`;
    throw e;
  }
}

describe("known-answer vector (docs/elevenlabs.md#signature-vector)", () => {
  it("signs the documented body to the documented MAC", async () => {
    expect(await sign("test_secret", T, enc.encode(KAV_BODY))).toBe(KAV_MAC);
  });
  it("verifies the documented header", async () => {
    await expect(verifySignature(`t=${T},v0=${KAV_MAC}`, enc.encode(KAV_BODY), opts())).resolves.toBeUndefined();
  });
  it("covers the raw bytes: re-serialised JSON does not verify", async () => {
    const reserialised = JSON.stringify(JSON.parse(KAV_BODY));
    expect(await codeOf(verifySignature(`t=${T},v0=${KAV_MAC}`, enc.encode(reserialised), opts()))).toBe("401 signature_mismatch");
  });
});

describe("header parsing is tolerant", () => {
  it.each([
    [`t=${T},v0=${KAV_MAC}`],
    [`v0=${KAV_MAC},t=${T}`],
    [` t = ${T} , v0 = ${KAV_MAC} `],
    [`t=${T},v0=${KAV_MAC.toUpperCase()}`],
    [`t=${T},v1=abc,v0=${"0".repeat(64)},v0=${KAV_MAC}`],
    [`t=${T},v0=${KAV_MAC},v0=${"f".repeat(64)}`],
    [`t=${T},v0=nothex,v0=${KAV_MAC}`],
  ])("accepts %s", async (header) => {
    await expect(verifySignature(header, enc.encode(KAV_BODY), opts())).resolves.toBeUndefined();
  });

  it.each([
    ["", "401 signature_missing"],
    ["   ", "401 signature_missing"],
    ["garbage", "401 signature_malformed"],
    [`v0=${KAV_MAC}`, "401 signature_malformed"],
    [`t=${T}`, "401 signature_malformed"],
    [`t=${T},v0=abc`, "401 signature_malformed"],
    [`t=${T}.5,v0=${KAV_MAC}`, "401 signature_malformed"],
    [`t=1.6e9,v0=${KAV_MAC}`, "401 signature_malformed"],
    [`t=abc,v0=${KAV_MAC}`, "401 signature_malformed"],
    [`t=-5,v0=${KAV_MAC}`, "401 signature_malformed"],
    [`t=${T},t=${T + 1},v0=${KAV_MAC}`, "401 signature_malformed"],
    [`t=${T},v0=${KAV_MAC}${"x".repeat(5000)}`, "401 signature_malformed"],
  ])("rejects %j as %s", async (header, expected) => {
    expect(await codeOf(verifySignature(header, enc.encode(KAV_BODY), opts()))).toBe(expected);
  });

  it("rejects a missing header", async () => {
    expect(await codeOf(verifySignature(null, enc.encode(KAV_BODY), opts()))).toBe("401 signature_missing");
  });

  it("parses every v0 and the timestamp", () => {
    const p = parseSignatureHeader(`t=${T},v0=${KAV_MAC},v0=${"a".repeat(64)}`);
    expect(p?.timestamp).toBe(T);
    expect(p?.signatures).toHaveLength(2);
  });
});

describe("timestamp window", () => {
  const header = `t=${T},v0=${KAV_MAC}`;
  it.each([
    [T + 1800, null],
    [T + 1801, "401 signature_expired"],
    [T - 300, null],
    [T - 301, "401 signature_in_future"],
  ])("now=%i gives %s", async (now, expected) => {
    expect(await codeOf(verifySignature(header, enc.encode(KAV_BODY), opts({ nowSeconds: now })))).toBe(expected);
  });
  it("is configurable", async () => {
    expect(await codeOf(verifySignature(header, enc.encode(KAV_BODY), opts({ nowSeconds: T + 100, maxAgeSeconds: 60 })))).toBe(
      "401 signature_expired",
    );
    expect(() => checkHeader(header, opts({ nowSeconds: T - 100, maxFutureSeconds: 60 }))).toThrow(/future/);
  });
});

describe("secrets", () => {
  it("accepts a signature by any configured secret (rotation)", async () => {
    const body = enc.encode('{"type":"x"}');
    const mac = await sign("new_secret", T, body);
    await expect(verifySignature(`t=${T},v0=${mac}`, body, opts({ secrets: ["old_secret", "new_secret"] }))).resolves.toBeUndefined();
    expect(await codeOf(verifySignature(`t=${T},v0=${mac}`, body, opts({ secrets: ["old_secret"] })))).toBe("401 signature_mismatch");
  });

  it("uses the secret's UTF-8 bytes as given (no base64 decoding of whsec_ secrets)", async () => {
    const body = enc.encode("{}");
    const key = await crypto.subtle.importKey("raw", enc.encode("whsec_abc"), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const expected = new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode(`${T}.{}`)));
    expect(await sign("whsec_abc", T, body)).toBe([...expected].map((b) => b.toString(16).padStart(2, "0")).join(""));
  });

  it("fails closed when no secret is configured", async () => {
    const cfg = parseConfig({ ELEVENLABS_WEBHOOK_SECRET: " , " } as never);
    expect(await codeOf(() => verifyOptions(cfg, Date.now()))).toBe("500 misconfigured");
    expect(await codeOf(verifySignature(`t=${T},v0=${KAV_MAC}`, enc.encode(KAV_BODY), opts({ secrets: [] })))).toBe(
      "401 signature_mismatch",
    );
  });

  it("imports each secret's key once per isolate, not per request", async () => {
    const spy = vi.spyOn(crypto.subtle, "importKey");
    const secret = `once_${Math.random()}`;
    const body = enc.encode("{}");
    for (let i = 0; i < 5; i++) {
      const mac = await sign(secret, T, body);
      await verifySignature(`t=${T},v0=${mac}`, body, opts({ secrets: [secret] }));
    }
    expect(spy.mock.calls.filter((c) => c[0] === "raw").length).toBe(1);
    expect(await hmacKey(secret)).toBe(await hmacKey(secret));
    spy.mockRestore();
  });
});
