/** `postcall_user_token` (src/lib/user-token.ts): who can make one, what it covers. */
import { describe, expect, it } from "vitest";
import { mintUserToken, tokenCovers, verifyUserToken } from "../src/lib/user-token";

const SECRETS = ["whsec_new", "whsec_old"];
const T = 1_780_000_000;

describe("postcall_user_token", () => {
  it("round-trips a user id and time, ids of any characters included", async () => {
    for (const id of ["user-1", "+14155550123", "ユーザー/🙂 .. x", "a".repeat(256)]) {
      const check = await verifyUserToken(SECRETS, await mintUserToken(SECRETS, id, T));
      expect(check).toEqual({ ok: true, claims: { userId: id, issuedAt: T } });
    }
  });

  it("verifies with any listed secret, so the webhook secret rotates with the token key", async () => {
    const byOld = await mintUserToken(["whsec_old"], "u", T);
    expect((await verifyUserToken(SECRETS, byOld)).ok).toBe(true);
    expect(await verifyUserToken(["whsec_new"], byOld)).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("refuses a token whose user id or time was changed", async () => {
    const token = await mintUserToken(SECRETS, "alice", T);
    const [p, , t, mac] = token.split(".");
    const asBob = [p, btoa("bob").replace(/=+$/, ""), t, mac].join(".");
    const later = [p, token.split(".")[1], String(T + 86_400), mac].join(".");
    expect(await verifyUserToken(SECRETS, asBob)).toEqual({ ok: false, reason: "bad_signature" });
    expect(await verifyUserToken(SECRETS, later)).toEqual({ ok: false, reason: "bad_signature" });
  });

  it.each([
    ["nothing", undefined, "missing"],
    ["an empty string", "", "missing"],
    ["a number", 42, "malformed"],
    ["three parts", "pu1.YQ.1", "malformed"],
    ["another prefix", "pu2.YQ.1.AAAAAAAAAAAAAAAAAAAAAA", "malformed"],
    ["a short MAC", "pu1.YQ.1.AAAA", "malformed"],
    ["a non-numeric time", "pu1.YQ.x.AAAAAAAAAAAAAAAAAAAAAA", "malformed"],
    ["invalid UTF-8", "pu1._w.1.AAAAAAAAAAAAAAAAAAAAAA", "malformed"],
    ["something huge", "pu1." + "A".repeat(10_000) + ".1.AAAAAAAAAAAAAAAAAAAAAA", "malformed"],
    ["a forged MAC", "pu1.YQ.1.AAAAAAAAAAAAAAAAAAAAAA", "bad_signature"],
  ])("refuses %s", async (_name, token, reason) => {
    expect(await verifyUserToken(SECRETS, token)).toEqual({ ok: false, reason });
  });

  it("covers only its own user id, from a little before it was issued to the end of its lifetime", () => {
    const claims = { userId: "alice", issuedAt: T };
    expect(tokenCovers(claims, "alice", T + 10, 3600)).toBe(true);
    expect(tokenCovers(claims, "bob", T + 10, 3600)).toBe(false);
    expect(tokenCovers(claims, "alice", T + 3601, 3600)).toBe(false);
    expect(tokenCovers(claims, "alice", T - 60, 3600)).toBe(true);
    expect(tokenCovers(claims, "alice", T - 3600, 3600)).toBe(false);
  });
});
