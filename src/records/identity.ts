/**
 * Who a conversation belongs to. Pure functions, no bindings.
 *
 * Order (first that is present wins): `data.user_id`, `conversation_initiation_client_data.user_id`,
 * the dynamic variable named by USER_ID_VARIABLE, then the other party's phone number in E.164
 * (`metadata.phone_call.external_number`, else `system__caller_id`).
 */
import { badRequest } from "../lib/errors";
import { MAX_ID_LENGTH, isValidId } from "../lib/ids";

export { MAX_ID_LENGTH, isValidId };

/**
 * `phone_link`: the conversation carried only a phone number, and that number is linked to an app
 * user (src/memory/objects.ts `recordTranscription`); never produced by `resolveUser` itself.
 */
export type UserIdSource = "user_id" | "client_data_user_id" | "dynamic_variable" | "phone_number" | "phone_link";


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
  /** The other party's number in E.164, when the conversation was a phone call. */
  phoneNumber: string | null;
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

export function resolveUser(inputs: IdentityInputs, userIdVariable: string, defaultCountryCode = ""): ResolvedUser {
  const phoneNumber =
    normalisePhone(inputs.externalNumber, defaultCountryCode) ??
    normalisePhone(inputs.dynamicVariables["system__caller_id"], defaultCountryCode);
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
