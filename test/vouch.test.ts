/** The pure rule of who may write a user's memory (src/records/identity.ts `vouch`), case by case. */
import { describe, expect, it } from "vitest";
import { vouch, type IdentityEvidence, type ResolvedUser } from "../src/records/identity";

const T = 1_764_320_100;
const DAY = 86_400;
const claim = (userId: string | null, source: ResolvedUser["source"], phoneNumber: string | null = null): ResolvedUser => ({ userId, source, phoneNumber });
const token = (userId: string, issuedAt = T): IdentityEvidence["token"] => ({ ok: true, claims: { userId, issuedAt } });
const ev = (t: IdentityEvidence["token"], trust: IdentityEvidence["trust"] = "token", startedAt = T + 60): IdentityEvidence => ({ trust, token: t, startedAt, lifetimeSeconds: DAY });

describe("vouch", () => {
  it("believes an app user id with a covering token, and nothing else", () => {
    expect(vouch(claim("u1", "dynamic_variable"), ev(token("u1")))).toMatchObject({ userId: "u1", vouchedBy: "token" });
    expect(vouch(claim("u1", "dynamic_variable"), ev(token("u2")))).toMatchObject({ userId: null, claimedUserId: "u1", unverified: "token_other_user" });
    expect(vouch(claim("u1", "user_id"), ev(token("u1"), "token", T + DAY + 1))).toMatchObject({ userId: null, unverified: "token_expired" });
    expect(vouch(claim("u1", "user_id"), ev(token("u1"), "token", T - 301))).toMatchObject({ userId: null, unverified: "token_expired" });
    expect(vouch(claim("u1", "user_id"), ev(token("u1"), "token", T - 300))).toMatchObject({ userId: "u1" });
    for (const reason of ["missing", "malformed", "bad_signature", "no_key"] as const) {
      expect(vouch(claim("u1", "client_data_user_id"), ev({ ok: false, reason }))).toMatchObject({ userId: null, unverified: `token_${reason}` });
    }
  });

  it("falls back to the telephony number when the app claim is not believed", () => {
    const r = vouch(claim("u1", "dynamic_variable", "+14155550100"), ev({ ok: false, reason: "missing" }));
    expect(r).toEqual({ userId: "+14155550100", source: "phone_number", phoneNumber: "+14155550100", vouchedBy: "telephony", claimedUserId: "u1", unverified: "token_missing" });
    expect(vouch(claim("+14155550100", "phone_number", "+14155550100"), ev({ ok: false, reason: "missing" }))).toMatchObject({ vouchedBy: "telephony", userId: "+14155550100" });
  });

  it("with trust `claimed` believes any claim but a phone number or a reserved id; `operator` believes the claim", () => {
    expect(vouch(claim("u1", "user_id"), ev({ ok: false, reason: "missing" }, "claimed"))).toMatchObject({ userId: "u1", vouchedBy: "claimed" });
    expect(vouch(claim("u1", "user_id"), ev(token("u2"), "claimed"))).toMatchObject({ userId: "u1", vouchedBy: "claimed" });
    expect(vouch(claim("+14155550100", "user_id"), ev({ ok: false, reason: "missing" }, "claimed"))).toMatchObject({ userId: null, unverified: "phone_number_claim" });
    expect(vouch(claim("+14155550100", "user_id"), ev(token("+14155550100"), "claimed"))).toMatchObject({ userId: "+14155550100", vouchedBy: "token" });
    expect(vouch(claim("..", "user_id"), ev(token(".."), "claimed"))).toMatchObject({ userId: null, unverified: "reserved_user_id" });
    expect(vouch(claim("u1", "user_id"), ev({ ok: false, reason: "missing" }, "operator"))).toMatchObject({ userId: "u1", vouchedBy: "operator" });
    expect(vouch(claim(".", "user_id"), ev({ ok: false, reason: "missing" }, "operator"))).toMatchObject({ userId: null, unverified: "reserved_user_id" });
  });

  it("`operator` (a history import) still never lets an app id that is a phone number address that number's memory", () => {
    // ElevenLabs' record of an old web session holds whatever user id that client claimed: importing it is
    // the operator's choice, but a claim of "+1..." was a client's, and telephony never vouched for it.
    expect(vouch(claim("+14155550100", "user_id"), ev({ ok: false, reason: "missing" }, "operator"))).toMatchObject({ userId: null, claimedUserId: "+14155550100", unverified: "phone_number_claim" });
    expect(vouch(claim("+14155550100", "client_data_user_id", "+14155550199"), ev({ ok: false, reason: "missing" }, "operator"))).toMatchObject({ userId: "+14155550199", vouchedBy: "telephony", unverified: "phone_number_claim" });
    expect(vouch(claim("+14155550100", "user_id"), ev(token("+14155550100"), "operator"))).toMatchObject({ userId: "+14155550100", vouchedBy: "token" });
  });

  it("leaves an event that claims no one to no one", () => {
    expect(vouch(claim(null, null), ev({ ok: false, reason: "missing" }))).toEqual({ userId: null, source: null, phoneNumber: null, vouchedBy: null });
  });
});
