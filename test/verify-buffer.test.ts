/**
 * verifyParsed assembles `<t>.<body>` in one reused buffer: these tests pin down what makes that
 * safe (Web Crypto copies its input before sign() returns; concurrent verifications never mix) and
 * that bodies of every size still verify.
 */
import { describe, expect, it } from "vitest";
import { ApiError } from "../src/lib/errors";
import { checkHeader, hmacKey, sign, signedPayload, verifyParsed } from "../src/webhooks/signature";
import { bytesToHex } from "../src/lib/bytes";

const T = 1_700_000_000;
const opts = (secrets: string[]) => ({ secrets, nowSeconds: T, maxAgeSeconds: 1800, maxFutureSeconds: 300 });
const body = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed * 7) & 0xff);

async function verdict(secret: string, signedWith: string, b: Uint8Array, tamper: boolean): Promise<string> {
  const header = `t=${T},v0=${await sign(signedWith, T, b)}`;
  const sent = tamper ? b.map((x, i) => (i === b.length >> 1 ? x ^ 1 : x)) : b;
  try {
    await verifyParsed(checkHeader(header, opts([secret])), sent, opts([secret]));
    return "ok";
  } catch (e) {
    if (e instanceof ApiError) return e.code;
    throw e;
  }
}

describe("verifyParsed's reused buffer", () => {
  it("relies on Web Crypto having its own copy of the data once sign() returns", async () => {
    const data = signedPayload(T, body(5000, 1));
    const expected = bytesToHex(new Uint8Array(await crypto.subtle.sign("HMAC", await hmacKey("k"), data.slice())));
    const pending = crypto.subtle.sign("HMAC", await hmacKey("k"), data);
    data.fill(0); // overwritten before the promise is awaited, as the next request would
    expect(bytesToHex(new Uint8Array(await pending))).toBe(expected);
  });

  it("keeps concurrent verifications apart", async () => {
    const cases = Array.from({ length: 60 }, (_, i) => ({
      secret: `whsec_${i % 3}`,
      signedWith: i % 5 === 0 ? "whsec_other" : `whsec_${i % 3}`,
      body: body(1000 + ((i * 7919) % 70_000), i),
      tamper: i % 4 === 1,
    }));
    const got = await Promise.all(cases.map((c) => verdict(c.secret, c.signedWith, c.body, c.tamper)));
    expect(got).toEqual(cases.map((c) => (c.signedWith === c.secret && !c.tamper ? "ok" : "signature_mismatch")));
  });

  it("verifies bodies of any size, before and after one larger than the buffer", async () => {
    for (const n of [0, 1, 64 * 1024, 300 * 1024, 10, 200 * 1024]) {
      expect(await verdict("s", "s", body(n, n), false)).toBe("ok");
      if (n > 0) expect(await verdict("s", "s", body(n, n), true)).toBe("signature_mismatch");
    }
  });
});
