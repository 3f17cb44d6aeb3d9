/** The incremental HMAC against Web Crypto's one-shot HMAC, the known-answer vector, and rotation. */
import { describe, expect, it } from "vitest";
import { hexToBytes, sign } from "../src/webhooks/signature";
import { SignatureCheck, StreamingHmac } from "../src/webhooks/streaming-hmac";
import { bytesToHex } from "../src/lib/bytes";

const enc = new TextEncoder();
const KAV_BODY = '{"event_type": "speech.completed", "id": "123456"}';
const KAV_MAC = "f8a0d1dc33ee963cb54d2f31514555995e93313c9d2042c030adbb82b87fae13";
const T = 1_600_000_000;

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let off = 0; off < n; off += 65536) crypto.getRandomValues(out.subarray(off, Math.min(n, off + 65536)));
  return out;
}

async function streamed(secret: string, t: number, chunks: Uint8Array[]): Promise<string> {
  const mac = await StreamingHmac.start(secret, t);
  for (const c of chunks) await mac.update(c);
  return bytesToHex(await mac.digest());
}

describe("StreamingHmac", () => {
  it("gives the known-answer vector (docs/elevenlabs.md#signature-vector), whole and split anywhere", async () => {
    const body = enc.encode(KAV_BODY);
    for (let i = 0; i <= body.length; i++) {
      expect(await streamed("test_secret", T, [body.subarray(0, i), body.subarray(i)])).toBe(KAV_MAC);
    }
  });

  it("equals Web Crypto HMAC for random bodies, secrets and splits", async () => {
    const secrets = ["s", "whsec_" + "k".repeat(40), "x".repeat(64), "y".repeat(65), "z".repeat(200), "clé-é-\u{1f511}"];
    for (const secret of secrets) {
      for (const n of [0, 1, 55, 63, 64, 65, 1000, 70_001]) {
        const body = randomBytes(n);
        const t = 1_700_000_000 + n;
        const cuts = Array.from({ length: 3 }, () => Math.floor(Math.random() * (n + 1))).sort((a, b) => a - b);
        const chunks = [body.subarray(0, cuts[0]), body.subarray(cuts[0], cuts[1]), body.subarray(cuts[1], cuts[2]), body.subarray(cuts[2])];
        expect(await streamed(secret, t, chunks), `${secret} ${n} ${cuts}`).toBe(await sign(secret, t, body));
      }
    }
  });

  it("is not fooled by a reused buffer once each update has resolved", async () => {
    const body = randomBytes(10_000);
    const mac = await StreamingHmac.start("reuse", T);
    const block = new Uint8Array(1000);
    for (let off = 0; off < body.length; off += 1000) {
      block.set(body.subarray(off, off + 1000));
      await mac.update(block);
    }
    expect(bytesToHex(await mac.digest())).toBe(await sign("reuse", T, body));
  });
});

describe("SignatureCheck", () => {
  it("accepts a body signed by any configured secret, against any v0", async () => {
    const body = randomBytes(5000);
    const bySecond = hexToBytes(await sign("second", T, body));
    const wrong = hexToBytes(await sign("other", T, body));
    const check = await SignatureCheck.start(["first", "second"], T);
    await check.update(body.subarray(0, 1234));
    await check.update(body.subarray(1234));
    expect(await check.matches([wrong, bySecond])).toBe(true);
  });

  it("refuses a wrong secret, a wrong timestamp, and a changed byte", async () => {
    const body = randomBytes(3000);
    const good = hexToBytes(await sign("first", T, body));
    const run = async (secrets: string[], t: number, b: Uint8Array) => {
      const check = await SignatureCheck.start(secrets, t);
      await check.update(b);
      return check.matches([good]);
    };
    expect(await run(["first"], T, body)).toBe(true);
    expect(await run(["second"], T, body)).toBe(false);
    expect(await run(["first"], T + 1, body)).toBe(false);
    const changed = body.slice();
    changed[2999]! ^= 1;
    expect(await run(["first"], T, changed)).toBe(false);
  });
});
