/**
 * The optional source-IP allowlist for the webhooks (ALLOWED_SOURCE_IPS). Pure: no bindings.
 *
 * Behind Cloudflare the client's address is `CF-Connecting-IP` (set by Cloudflare's edge, not by the
 * client, so it cannot be forged through Cloudflare). Rules are single addresses or CIDR blocks, IPv4
 * or IPv6; an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is matched as the IPv4 address it carries.
 */

/** ElevenLabs' published egress addresses (docs/elevenlabs.md#egress-ips), by region. */
export const ELEVENLABS_EGRESS_IPS: readonly string[] = [
  // US
  "34.67.146.145",
  "34.59.11.47",
  // EU
  "35.204.38.71",
  "34.147.113.54",
  // Asia
  "35.185.187.110",
  "35.247.157.189",
  // EU residency
  "34.77.234.246",
  "34.140.184.144",
  // India residency
  "34.93.26.174",
  "34.93.252.69",
  // Singapore residency
  "34.87.23.17",
  "34.126.179.103",
];

/** The ALLOWED_SOURCE_IPS word that stands for ELEVENLABS_EGRESS_IPS. */
export const ELEVENLABS_KEYWORD = "elevenlabs";

export interface IpAddress {
  version: 4 | 6;
  bytes: Uint8Array;
}

export interface IpRange extends IpAddress {
  /** Number of leading bits that must match. */
  prefix: number;
}

function parseIpv4(s: string): Uint8Array | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    // No leading zeros: "010" is octal to some parsers and decimal to others; refuse the ambiguity.
    if (!/^(0|[1-9]\d{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

function parseIpv6(s: string): Uint8Array | null {
  if (s.length === 0 || s.length > 45) return null;
  let text = s;
  // A trailing dotted quad carries the last 32 bits (e.g. ::ffff:192.0.2.1).
  let tail: Uint8Array | null = null;
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".")) {
    tail = parseIpv4(text.slice(lastColon + 1));
    if (tail === null) return null;
    text = text.slice(0, lastColon + 1) + "0:0";
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (h: string): string[] | null => {
    if (h === "") return [];
    const g = h.split(":");
    return g.every((x) => /^[0-9a-fA-F]{1,4}$/.test(x)) ? g : null;
  };
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === null || rest === null) return null;
  const words: string[] = [];
  if (halves.length === 2) {
    const missing = 8 - head.length - rest.length;
    if (missing < 1) return null;
    words.push(...head, ...Array<string>(missing).fill("0"), ...rest);
  } else {
    if (head.length !== 8) return null;
    words.push(...head);
  }
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    const n = parseInt(w, 16);
    out[i * 2] = n >> 8;
    out[i * 2 + 1] = n & 0xff;
  });
  if (tail) out.set(tail, 12);
  return out;
}

const isV4Mapped = (b: Uint8Array) => b.length === 16 && b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;

/** Parses one IPv4 or IPv6 address (no brackets, no zone, no port); IPv4-mapped IPv6 becomes IPv4. */
export function parseIp(text: string): IpAddress | null {
  const s = text.trim();
  if (s.includes(":")) {
    const bytes = parseIpv6(s);
    if (bytes === null) return null;
    return isV4Mapped(bytes) ? { version: 4, bytes: bytes.slice(12) } : { version: 6, bytes };
  }
  const bytes = parseIpv4(s);
  return bytes === null ? null : { version: 4, bytes };
}

/**
 * Parses `address` or `address/prefix`. Host bits set below the prefix (`10.1.2.3/8`) are accepted and
 * ignored, as most firewalls do: the intent is unambiguous.
 */
export function parseRange(text: string): IpRange | null {
  const s = text.trim();
  const slash = s.indexOf("/");
  const ip = parseIp(slash < 0 ? s : s.slice(0, slash));
  if (ip === null) return null;
  const max = ip.version === 4 ? 32 : 128;
  if (slash < 0) return { ...ip, prefix: max };
  const p = s.slice(slash + 1);
  if (!/^(0|[1-9]\d{0,2})$/.test(p)) return null;
  let prefix = Number(p);
  // "::ffff:10.0.0.0/104" names an IPv4 block: its prefix counts the 96 mapped bits first.
  if (ip.version === 4 && s.slice(0, slash).includes(":")) prefix -= 96;
  if (prefix < 0 || prefix > max) return null;
  return { ...ip, prefix };
}

export function inRange(ip: IpAddress, range: IpRange): boolean {
  if (ip.version !== range.version) return false;
  const full = Math.floor(range.prefix / 8);
  for (let i = 0; i < full; i++) if (ip.bytes[i] !== range.bytes[i]) return false;
  const bits = range.prefix % 8;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return (ip.bytes[full]! & mask) === (range.bytes[full]! & mask);
}

export class AllowlistError extends Error {}

/**
 * Parses ALLOWED_SOURCE_IPS: comma-separated addresses, CIDR blocks and the word `elevenlabs`.
 * Empty means "off" (null). An entry that is none of those throws, naming it.
 */
export function parseAllowlist(raw: string | undefined): IpRange[] | null {
  const entries = (raw ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (entries.length === 0) return null;
  const ranges: IpRange[] = [];
  for (const entry of entries) {
    if (entry.toLowerCase() === ELEVENLABS_KEYWORD) {
      for (const ip of ELEVENLABS_EGRESS_IPS) ranges.push(parseRange(ip)!);
      continue;
    }
    const range = parseRange(entry);
    if (range === null) throw new AllowlistError(`entry ${JSON.stringify(entry)} is not an IP address or CIDR block`);
    ranges.push(range);
  }
  return ranges;
}

/** Whether `clientIp` (the CF-Connecting-IP value, or null when absent) is allowed. Off = always. */
export function isAllowed(allowlist: IpRange[] | null, clientIp: string | null): boolean {
  if (allowlist === null) return true;
  // With the allowlist on, a request without a readable source address is refused (fail closed).
  if (clientIp === null) return false;
  const ip = parseIp(clientIp);
  return ip !== null && allowlist.some((r) => inRange(ip, r));
}
