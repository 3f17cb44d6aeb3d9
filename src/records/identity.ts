/**
 * Who a conversation belongs to. Pure functions, no bindings.
 *
 * Two steps. `resolveUser` reads the claim: the first present of `data.user_id`,
 * `conversation_initiation_client_data.user_id`, the dynamic variable named by USER_ID_VARIABLE,
 * then the other party's phone number in E.164 from `metadata.phone_call.external_number` only
 * (set by ElevenLabs' telephony, never by the client: ELEVENLABS.md section 5). `vouch` then decides
 * whether the claim may write anyone's memory, from how the identity is vouched for (`IdentityTrust`):
 * the client sets every user id and dynamic variable, so an app user id counts only with a
 * `postcall_user_token` this service issued for it, covering the conversation's start.
 */
import { badRequest } from "../lib/errors";
import { MAX_ID_LENGTH, isValidId } from "../lib/ids";
import { tokenCovers, type TokenCheck } from "../lib/user-token";

export { MAX_ID_LENGTH, isValidId };

/**
 * `phone_link`: the conversation carried only a phone number, and that number is linked to an app
 * user (src/memory/objects.ts `recordTranscription`); never produced by `resolveUser` itself.
 */
export type UserIdSource = "user_id" | "client_data_user_id" | "dynamic_variable" | "phone_number" | "phone_link" | "operator";


export function checkUserId(id: string, where: string): string {
  if (!isValidId(id)) {
    throw badRequest("invalid_user_id", `${where} must be 1 to ${MAX_ID_LENGTH} characters with no control characters.`);
  }
  return id;
}

const WITHHELD = /^(anonymous|unknown|private|restricted|unavailable|withheld)$/i;

/**
 * Normalises a phone number to E.164 (`+` and 7 to 15 digits), or returns null when it is not one.
 * Accepts `tel:` / `sip:user@host` forms, spaces, dashes, dots and brackets, and the `00`
 * international prefix. A number without a country code is completed with `defaultCountryCode`
 * (after dropping a national trunk `0`); with no default it is taken as already international.
 */
export function normalisePhone(raw: unknown, defaultCountryCode = ""): string | null {
  if (typeof raw !== "string") return null;
  let s = raw.trim();
  if (s === "" || s.length > 64 || WITHHELD.test(s)) return null;
  s = s.replace(/^(tel|sips?):/i, "");
  const at = s.indexOf("@");
  if (at >= 0) s = s.slice(0, at);
  s = s.replace(/[\s\-.()\u00a0]/g, "");
  let digits: string;
  if (s.startsWith("+")) digits = s.slice(1);
  else if (s.startsWith("00")) digits = s.slice(2);
  else if (defaultCountryCode !== "") {
    const national = s.replace(/^0/, "");
    digits = s.startsWith(defaultCountryCode) && s.length > 10 ? s : defaultCountryCode + national;
  } else digits = s;
  if (!/^[1-9]\d{6,14}$/.test(digits)) return null;
  return `+${digits}`;
}

/** Whether `s` is already a number in the E.164 form `normalisePhone` returns. */
export const isE164 = (s: string): boolean => /^\+[1-9]\d{6,14}$/.test(s);

export interface ResolvedUser {
  userId: string | null;
  source: UserIdSource | null;
  /** The other party's number in E.164, when the conversation was a phone call (`metadata.phone_call`). */
  phoneNumber: string | null;
  /** How the owner was vouched for (`vouch`); absent on records made before verification existed. */
  vouchedBy?: VouchedBy | null;
  /** An app user id the event claimed but could not prove (the owner is then not that user). */
  claimedUserId?: string | null;
  /** Why `claimedUserId` was not believed. */
  unverified?: UnverifiedReason | null;
}

/**
 * How the identity of an event is vouched for, given by whoever feeds it in:
 *  - `token`: a webhook from ElevenLabs; the app user id counts only with a valid postcall_user_token;
 *  - `operator`: the operator says who it is (the attribute route, an import with our own API key),
 *    except that an app id that is a phone number still needs its token;
 *  - `claimed`: USER_ID_TRUST="claimed", any claim is believed (the pre-verification behaviour).
 */
export type IdentityTrust = "token" | "operator" | "claimed";

/** What made the owner believed: `token`, `telephony` (metadata.phone_call), `operator`, `claimed`. */
export type VouchedBy = "token" | "telephony" | "operator" | "claimed";

export type UnverifiedReason =
  | "token_missing"
  | "token_malformed"
  | "token_bad_signature"
  | "token_no_key"
  | "token_other_user"
  | "token_expired"
  | "reserved_user_id"
  | "phone_number_claim";

export interface IdentityEvidence {
  trust: IdentityTrust;
  /** The event's `postcall_user_token`, checked (signature only) by src/lib/user-token.ts. */
  token: TokenCheck;
  /** The conversation's start (Unix seconds): a token covers a conversation that started within its lifetime. */
  startedAt: number;
  lifetimeSeconds: number;
}

/** User ids no path can address (`.` and `..` are resolved away by every URL parser). */
const RESERVED_IDS = new Set([".", ".."]);

/** Why `claim.userId` is not proven by the token, or null when it is. */
function tokenProblem(claim: string, ev: IdentityEvidence): UnverifiedReason | null {
  if (!ev.token.ok) return `token_${ev.token.reason}`;
  if (ev.token.claims.userId !== claim) return "token_other_user";
  return tokenCovers(ev.token.claims, claim, ev.startedAt, ev.lifetimeSeconds) ? null : "token_expired";
}

/**
 * The one rule of who may write a user's memory (docs/guarantees.md "Who can write a user's memory").
 * A number from telephony is believed as far as caller id is. An app user id is believed with a
 * covering token (`token`), on the operator's word (`operator`), or as claimed (`claimed`), except
 * that a claimed id that is a phone number, or `.` / `..`, always needs the token: an app must not be
 * able to address a phone caller's memory. A claim not believed leaves the event to the caller's
 * number when telephony gave one, else to no one, and is kept as `claimedUserId` with the reason.
 */
export function vouch(claim: ResolvedUser, ev: IdentityEvidence): ResolvedUser {
  if (claim.userId === null) return { ...claim, vouchedBy: null };
  if (claim.source === "phone_number") return { ...claim, vouchedBy: "telephony" };
  const id = claim.userId;
  const reserved = RESERVED_IDS.has(id);
  // An app id that is a phone number needs a token whoever vouches: even in an import (the operator's
  // choice) it was a client's claim, and only telephony or this service's token speaks for a number.
  if (ev.trust === "operator" && !reserved && !isE164(id)) return { ...claim, vouchedBy: "operator" };
  const byToken = tokenProblem(id, ev);
  let problem: UnverifiedReason | null = byToken;
  if (reserved) problem = "reserved_user_id";
  else if (byToken !== null && ev.trust !== "token") problem = isE164(id) ? "phone_number_claim" : null;
  if (problem === null) return { ...claim, vouchedBy: byToken === null ? "token" : "claimed" };
  const byNumber = claim.phoneNumber !== null;
  return {
    userId: byNumber ? claim.phoneNumber : null,
    source: byNumber ? "phone_number" : null,
    phoneNumber: claim.phoneNumber,
    vouchedBy: byNumber ? "telephony" : null,
    claimedUserId: id,
    unverified: problem,
  };
}

function asId(v: unknown): string | null {
  if (typeof v === "string") return v.trim() === "" ? null : v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return null;
}

export interface IdentityInputs {
  dataUserId: unknown;
  clientDataUserId: unknown;
  dynamicVariables: Record<string, unknown>;
  externalNumber: unknown;
}

/**
 * The claim: who the event says it belongs to. The caller's number comes from `externalNumber`
 * (`metadata.phone_call.external_number`) only: `system__caller_id` among the client's dynamic
 * variables is whatever a web client put there, so it names no one.
 */
export function resolveUser(inputs: IdentityInputs, userIdVariable: string, defaultCountryCode = ""): ResolvedUser {
  const phoneNumber = normalisePhone(inputs.externalNumber, defaultCountryCode);
  const candidates: [unknown, UserIdSource, string][] = [
    [inputs.dataUserId, "user_id", "data.user_id"],
    [inputs.clientDataUserId, "client_data_user_id", "data.conversation_initiation_client_data.user_id"],
    [inputs.dynamicVariables[userIdVariable], "dynamic_variable", `the dynamic variable ${userIdVariable}`],
  ];
  for (const [value, source, where] of candidates) {
    const id = asId(value);
    if (id !== null) return { userId: checkUserId(id, where), source, phoneNumber };
  }
  if (phoneNumber) return { userId: phoneNumber, source: "phone_number", phoneNumber };
  return { userId: null, source: null, phoneNumber: null };
}
