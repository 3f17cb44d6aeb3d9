/**
 * FORWARD_DESTINATIONS and FORWARD_SIGNING_SECRET, parsed and checked (docs/forwarding.md). Pure:
 * config.ts calls it and turns a ForwardConfigError into the usual 500 `misconfigured` naming the setting.
 *
 * A destination is `{ "url", "events": [...], "name"?, "include_transcript"? }`. Its `name` (or, without
 * one, its URL) is the key deliveries and dead letters refer to, so reordering the array moves nothing;
 * keys must be unique. URLs must be https: an event carries what a user said, and a signature proves who
 * sent it, not that nobody read it. Plain http is allowed only to this machine (localhost, 127.0.0.1,
 * [::1]), so a local receiver works in development.
 */
import { Webhook } from "standardwebhooks";

export const FORWARD_EVENT_TYPES = ["conversation.stored", "audio.stored", "call.failed", "user.erased"] as const;
export type ForwardEventType = (typeof FORWARD_EVENT_TYPES)[number];

export interface ForwardDestination {
  /** `name`, or the URL when there is none: what queued deliveries and dead letters name. */
  key: string;
  name: string | null;
  url: string;
  events: ForwardEventType[];
  /** Whether conversation.stored carries the transcript's turns (off: only a link to them). */
  includeTranscript: boolean;
}

export class ForwardConfigError extends Error {
  constructor(
    readonly setting: "FORWARD_DESTINATIONS" | "FORWARD_SIGNING_SECRET",
    problem: string,
  ) {
    super(problem);
  }
}

const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);
const KNOWN_FIELDS = new Set(["url", "events", "name", "include_transcript"]);

function destination(value: unknown, i: number): ForwardDestination {
  const bad = (problem: string) => new ForwardConfigError("FORWARD_DESTINATIONS", `entry ${i} ${problem}`);
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw bad("must be an object");
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KNOWN_FIELDS.has(k)) throw bad(`has an unknown field ${JSON.stringify(k)}`);
  if (typeof o["url"] !== "string") throw bad("needs a `url` string");
  let url: URL;
  try {
    url = new URL(o["url"]);
  } catch {
    throw bad(`has a \`url\` that is not a URL: ${JSON.stringify(o["url"])}`);
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && LOCAL_HOSTS.has(url.hostname))) {
    throw bad(`must use https (http only for localhost / 127.0.0.1), got ${JSON.stringify(o["url"])}`);
  }
  if (url.username !== "" || url.password !== "") throw bad("must not carry credentials in its `url` (the signature authenticates postcall)");
  const events = o["events"];
  if (!Array.isArray(events) || events.length === 0) throw bad(`needs \`events\`: a non-empty array of ${FORWARD_EVENT_TYPES.join(", ")}`);
  for (const e of events) {
    if (!(FORWARD_EVENT_TYPES as readonly unknown[]).includes(e)) {
      throw bad(`has an unknown event ${JSON.stringify(e)} (known: ${FORWARD_EVENT_TYPES.join(", ")})`);
    }
  }
  const name = o["name"];
  if (name !== undefined && (typeof name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name))) {
    throw bad("has a `name` that is not 1-64 letters, digits, '.', '_' or '-'");
  }
  const include = o["include_transcript"];
  if (include !== undefined && typeof include !== "boolean") throw bad("has an `include_transcript` that is not true or false");
  return {
    key: name ?? url.toString(),
    name: name ?? null,
    url: url.toString(),
    events: [...new Set(events as ForwardEventType[])],
    includeTranscript: include === true,
  };
}

export function parseDestinations(raw: string | undefined): ForwardDestination[] {
  if (raw === undefined || raw.trim() === "") return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ForwardConfigError("FORWARD_DESTINATIONS", "is not valid JSON");
  }
  if (!Array.isArray(parsed)) throw new ForwardConfigError("FORWARD_DESTINATIONS", "must be a JSON array of destinations");
  const out = parsed.map(destination);
  const keys = new Set<string>();
  for (const d of out) {
    if (keys.has(d.key)) throw new ForwardConfigError("FORWARD_DESTINATIONS", `names the destination ${JSON.stringify(d.key)} twice (give each a unique \`name\`)`);
    keys.add(d.key);
  }
  return out;
}

/** Standard Webhooks secrets: `whsec_` + base64 of at least 24 bytes each, comma-separated (rotation). */
export function parseSigningSecrets(raw: string | undefined, destinations: ForwardDestination[]): string[] {
  const secrets = (raw ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  secrets.forEach((s, i) => {
    const body = s.startsWith("whsec_") ? s.slice(6) : null;
    if (body === null || !/^[A-Za-z0-9+/]+={0,2}$/.test(body) || body.length % 4 !== 0) {
      throw new ForwardConfigError("FORWARD_SIGNING_SECRET", `value ${i + 1} must be whsec_ followed by base64`);
    }
    let bytes: number;
    try {
      bytes = new Webhook(s).sign("probe", new Date(0), "").length > 0 ? atob(body).length : 0;
    } catch {
      throw new ForwardConfigError("FORWARD_SIGNING_SECRET", `value ${i + 1} must be whsec_ followed by base64`);
    }
    if (bytes < 24) throw new ForwardConfigError("FORWARD_SIGNING_SECRET", `value ${i + 1} is too short (at least 24 bytes of key)`);
  });
  // Fail closed: an unsigned delivery would teach receivers to accept unsigned events.
  if (destinations.length > 0 && secrets.length === 0) {
    throw new ForwardConfigError("FORWARD_SIGNING_SECRET", "is required when FORWARD_DESTINATIONS names a destination");
  }
  return secrets;
}
