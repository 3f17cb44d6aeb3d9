/**
 * Settings are parsed and validated once per isolate (per distinct env object), at the edge of the
 * Worker. A malformed setting fails every request with a 500 that names it, rather than being
 * half-applied; a missing secret fails closed for the routes that need it.
 */
import { ApiError } from "./errors";
import type { Env } from "./env";
import { AllowlistError, parseAllowlist, type IpRange } from "./http/source-ip";
import { ForwardConfigError, parseDestinations, parseSigningSecrets, type ForwardDestination } from "./forwarding-config";

export type VariableValue = string | number | boolean;

export interface Config {
  webhookSecrets: string[];
  apiKeys: string[];
  /** AGENT_API_KEY: accepted only on the routes ElevenLabs calls (src/lib/http/auth.ts). */
  agentKeys: string[];
  /** USER_ID_TRUST: whether a claimed user id needs a `postcall_user_token` to write memory. */
  userIdTrust: "verified" | "claimed";
  /** USER_TOKEN_LIFETIME_SECONDS (src/lib/user-token.ts `tokenCovers`). */
  userTokenLifetimeSeconds: number;
  userIdVariable: string;
  defaultVariables: Record<string, VariableValue>;
  previousTopicsMaxChars: number;
  signatureMaxAgeSeconds: number;
  signatureMaxFutureSeconds: number;
  maxBodyBytes: number;
  /** Digits of a country calling code used for national-format numbers (no "+"), or "" to reject them. */
  defaultCountryCode: string;
  /** Days after which a conversation's records, transcript and audio are removed; null keeps them forever. */
  retentionDays: number | null;
  /** Source addresses the webhooks accept (CF-Connecting-IP); null when the allowlist is off. */
  allowedSourceIps: IpRange[] | null;
  /** How long a context read may be served from this isolate's cache (0: never; src/memory/context-cache.ts). */
  contextCacheSeconds: number;
  /** FORWARD_DESTINATIONS (src/lib/forwarding-config.ts); empty: forwarding is off. */
  forwardDestinations: ForwardDestination[];
  /** FORWARD_SIGNING_SECRET: one Standard Webhooks signature per secret on every delivery. */
  forwardSigningSecrets: string[];
  /** FORWARD_RETRY_BASE_SECONDS: the first retry's delay, doubling per attempt (src/forwarding/deliver.ts). */
  forwardRetryBaseSeconds: number;
  /** FORWARD_TIMEOUT_SECONDS: how long a destination may take to answer before the attempt counts as failed. */
  forwardTimeoutSeconds: number;
  /** MEMORY_SCOPE: one memory per user ("user"), or per agent and user ("agent"); src/memory/objects.ts `memoryObject`. */
  memoryScope: "user" | "agent";
  /** ELEVENLABS_API_BASE, without a trailing slash (src/elevenlabs/api.ts). */
  elevenLabsApiBase: string;
  /**
   * AUDIO_BACKFILL_AFTER_SECONDS: how long an expected audio webhook is waited for before the API is
   * asked (src/objects/conversation-ledger/audio-backfill.ts); past it, the health page counts the audio as missing.
   */
  audioBackfillAfterSeconds: number;
  /** AUDIO_BACKFILL: `auto` (when the transcription says `has_audio`), `always` (audio webhooks are on), `off`. */
  audioBackfill: "auto" | "always" | "off";
  /** ERASE_AT_ELEVENLABS: an erasure also deletes each of the user's stored conversations at ElevenLabs (needs ELEVENLABS_API_KEY). */
  eraseAtElevenLabs: boolean;
  /** ERASURE_LEDGER_KEY: keys of the erasure ledger's hashes, the first hashes new entries (src/storage/erasures.ts). */
  erasureLedgerKeys: string[];
}

export class ConfigError extends ApiError {
  constructor(setting: string, problem: string) {
    super(500, "misconfigured", `Setting ${setting} ${problem}.`);
  }
}

function list(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function integer(env: Env, name: keyof Env, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const text = String(raw).trim();
  if (!/^\d+$/.test(text)) throw new ConfigError(name, `must be a whole number, got ${JSON.stringify(raw)}`);
  const n = Number(text);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function oneOf<const T extends readonly string[]>(env: Env, name: keyof Env, allowed: T, fallback: T[number]): T[number] {
  const raw = env[name];
  if (raw === undefined || String(raw).trim() === "") return fallback;
  const v = String(raw).trim();
  if (!(allowed as readonly string[]).includes(v)) {
    throw new ConfigError(name, `must be one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}, got ${JSON.stringify(raw)}`);
  }
  return v as T[number];
}

function defaultVariables(raw: string | undefined): Record<string, VariableValue> {
  if (raw === undefined || raw.trim() === "") return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError("DEFAULT_DYNAMIC_VARIABLES", "is not valid JSON");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ConfigError("DEFAULT_DYNAMIC_VARIABLES", "must be a JSON object");
  }
  const out: Record<string, VariableValue> = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean") {
      throw new ConfigError("DEFAULT_DYNAMIC_VARIABLES", `value of ${JSON.stringify(k)} must be a string, number or boolean`);
    }
    out[k] = v;
  }
  return out;
}

function allowlist(raw: string | undefined): IpRange[] | null {
  try {
    return parseAllowlist(raw);
  } catch (err) {
    if (err instanceof AllowlistError) throw new ConfigError("ALLOWED_SOURCE_IPS", err.message);
    throw err;
  }
}

function forwarding(env: Env): { destinations: ForwardDestination[]; secrets: string[] } {
  try {
    const destinations = parseDestinations(env.FORWARD_DESTINATIONS);
    return { destinations, secrets: parseSigningSecrets(env.FORWARD_SIGNING_SECRET, destinations) };
  } catch (err) {
    if (err instanceof ForwardConfigError) throw new ConfigError(err.setting, err.message);
    throw err;
  }
}

function apiBase(raw: string | undefined): string {
  const text = (raw ?? "").trim();
  if (text === "") return "https://api.elevenlabs.io";
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError("ELEVENLABS_API_BASE", `must be an http(s) URL, got ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new ConfigError("ELEVENLABS_API_BASE", "must be an http(s) URL");
  return text.replace(/\/+$/, "");
}

export function parseConfig(env: Env): Config {
  const userIdVariable = (env.USER_ID_VARIABLE ?? "user_id").trim() || "user_id";
  const cc = (env.DEFAULT_COUNTRY_CODE ?? "").trim().replace(/^\+/, "");
  if (cc !== "" && !/^[1-9]\d{0,2}$/.test(cc)) {
    throw new ConfigError("DEFAULT_COUNTRY_CODE", "must be a country calling code such as 1 or 44");
  }
  const forward = forwarding(env);
  return {
    webhookSecrets: list(env.ELEVENLABS_WEBHOOK_SECRET),
    apiKeys: list(env.API_KEY),
    agentKeys: list(env.AGENT_API_KEY),
    userIdTrust: oneOf(env, "USER_ID_TRUST", ["verified", "claimed"] as const, "verified"),
    userTokenLifetimeSeconds: integer(env, "USER_TOKEN_LIFETIME_SECONDS", 24 * 3600, 60, 30 * 24 * 3600),
    userIdVariable,
    defaultVariables: defaultVariables(env.DEFAULT_DYNAMIC_VARIABLES),
    previousTopicsMaxChars: integer(env, "PREVIOUS_TOPICS_MAX_CHARS", 500, 0, 100_000),
    signatureMaxAgeSeconds: integer(env, "SIGNATURE_MAX_AGE_SECONDS", 30 * 60, 0, 7 * 24 * 3600),
    signatureMaxFutureSeconds: integer(env, "SIGNATURE_MAX_FUTURE_SECONDS", 5 * 60, 0, 24 * 3600),
    maxBodyBytes: integer(env, "MAX_BODY_BYTES", 16 * 1024 * 1024, 1024, 100 * 1024 * 1024),
    defaultCountryCode: cc,
    // Unset or empty: keep everything. At most 100 years, so that cutoffs stay well inside Date's range.
    retentionDays: env.RETENTION_DAYS === undefined || String(env.RETENTION_DAYS).trim() === ""
      ? null
      : integer(env, "RETENTION_DAYS", 0, 1, 36_500),
    allowedSourceIps: allowlist(env.ALLOWED_SOURCE_IPS),
    contextCacheSeconds: integer(env, "CONTEXT_CACHE_SECONDS", 0, 0, 300),
    forwardDestinations: forward.destinations,
    forwardSigningSecrets: forward.secrets,
    forwardRetryBaseSeconds: integer(env, "FORWARD_RETRY_BASE_SECONDS", 5, 0, 3600),
    forwardTimeoutSeconds: integer(env, "FORWARD_TIMEOUT_SECONDS", 10, 1, 60),
    memoryScope: oneOf(env, "MEMORY_SCOPE", ["user", "agent"] as const, "user"),
    elevenLabsApiBase: apiBase(env.ELEVENLABS_API_BASE),
    audioBackfillAfterSeconds: integer(env, "AUDIO_BACKFILL_AFTER_SECONDS", 900, 0, 7 * 24 * 3600),
    audioBackfill: oneOf(env, "AUDIO_BACKFILL", ["auto", "always", "off"] as const, "auto"),
    eraseAtElevenLabs: oneOf(env, "ERASE_AT_ELEVENLABS", ["true", "false"] as const, "false") === "true",
    erasureLedgerKeys: list(env.ERASURE_LEDGER_KEY),
  };
}

const cache = new WeakMap<object, Config>();

/** The parsed configuration for this env, computed once per isolate. */
export function config(env: Env): Config {
  let c = cache.get(env);
  if (!c) {
    c = parseConfig(env);
    cache.set(env, c);
  }
  return c;
}
