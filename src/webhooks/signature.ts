/**
 * `ElevenLabs-Signature: t=<unix seconds>,v0=<hex hmac-sha256>`; the MAC covers `<t>.<raw body bytes>`
 * with the webhook secret's UTF-8 bytes as the key. Pure Web Crypto, no bindings.
 *
 * Stricter than the official SDKs on purpose (docs/elevenlabs.md#signature): `t` must be an integer,
 * skew is bounded both ways, every `v0` is tried (so a sender can sign with two secrets during a
 * rotation), comparison is constant time, and an empty secret list fails closed.
 */
import { bytesToHex } from "../lib/bytes";
import { unauthorized } from "../lib/errors";

export interface SignatureHeader {
  timestamp: number;
  /** Every `v0` value that is 64 hex digits, decoded; malformed ones are dropped (they can never match). */
  signatures: Uint8Array[];
}

export interface VerifyOptions {
  secrets: string[];
  nowSeconds: number;
  maxAgeSeconds: number;
  maxFutureSeconds: number;
}

const HEX64 = /^[0-9a-fA-F]{64}$/;
const MAX_HEADER_LENGTH = 4096;

/**
 * Tolerant parse: fields in any order, spaces around `,` and `=`, unknown schemes ignored, several
 * `v0`. Returns null when the header cannot be a valid signature header (no usable `t` or `v0`).
 */
export function parseSignatureHeader(header: string): SignatureHeader | null {
  if (header.length > MAX_HEADER_LENGTH) return null;
  let timestamp: number | null = null;
  let timestampSeen = false;
  const signatures: Uint8Array[] = [];
  for (const part of header.split(",")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === "t") {
      // Two different timestamps make the header ambiguous: refuse rather than guess.
      if (timestampSeen) return null;
      timestampSeen = true;
      if (!/^\d{1,12}$/.test(value)) return null;
      timestamp = Number(value);
    } else if (key === "v0" && HEX64.test(value)) {
      signatures.push(hexToBytes(value));
    }
  }
  if (timestamp === null || signatures.length === 0) return null;
  return { timestamp, signatures };
}

export function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

const encoder = new TextEncoder();

// Importing a key costs a round trip through the crypto layer; do it once per secret per isolate.
const keyCache = new Map<string, Promise<CryptoKey>>();

export function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keyCache.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    keyCache.set(secret, key);
    key.catch(() => keyCache.delete(secret));
  }
  return key;
}

/**
 * The bytes the MAC covers: `<t>.` followed by the body, exactly as received. A fresh copy, for
 * callers that keep it (tests); verification itself assembles it in a reused buffer (signedMessage).
 */
export function signedPayload(timestamp: number, body: Uint8Array): Uint8Array {
  const prefix = encoder.encode(`${timestamp}.`);
  const out = new Uint8Array(prefix.length + body.length);
  out.set(prefix, 0);
  out.set(body, prefix.length);
  return out;
}

export async function sign(secret: string, timestamp: number, body: Uint8Array): Promise<string> {
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(secret), signedPayload(timestamp, body));
  return bytesToHex(new Uint8Array(mac));
}

/** Constant-time equality for two 32-byte MACs. */
export function macEquals(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  return crypto.subtle.timingSafeEqual(a, b);
}

/** Throws a 401 `ApiError` unless the header is a valid, fresh signature of `body` by one of the secrets. */
export function checkHeader(header: string | null, opts: VerifyOptions): SignatureHeader {
  if (header === null || header.trim() === "") {
    throw unauthorized("signature_missing", "The ElevenLabs-Signature header is missing.");
  }
  const parsed = parseSignatureHeader(header);
  if (!parsed) {
    throw unauthorized(
      "signature_malformed",
      "The ElevenLabs-Signature header must look like t=<unix seconds>,v0=<64 hex digits>.",
    );
  }
  const age = opts.nowSeconds - parsed.timestamp;
  if (age > opts.maxAgeSeconds) {
    throw unauthorized("signature_expired", `The signature timestamp is ${age} s old; at most ${opts.maxAgeSeconds} s is accepted.`);
  }
  if (-age > opts.maxFutureSeconds) {
    throw unauthorized(
      "signature_in_future",
      `The signature timestamp is ${-age} s in the future; at most ${opts.maxFutureSeconds} s of clock skew is accepted.`,
    );
  }
  return parsed;
}

export async function verifySignature(header: string | null, body: Uint8Array, opts: VerifyOptions): Promise<void> {
  return verifyParsed(checkHeader(header, opts), body, opts);
}

// `<t>.<body>` is assembled in one reused buffer rather than a fresh body-sized allocation per
// webhook (the allocation and the garbage it leaves cost about as much as the HMAC's own copy).
// Safe because Web Crypto takes its own copy of the data before sign() returns (W3C Web
// Cryptography API, sign() step 2; test/signature.test.ts checks it here), and the buffer is filled
// and handed to sign() with no await in between, so concurrent requests never share it. Messages
// over SCRATCH_MAX get their own buffer, so one rare large body does not stay in memory.
const SCRATCH_MAX = 256 * 1024;
let scratch = new Uint8Array(0);

function signedMessage(timestamp: number, body: Uint8Array): Uint8Array {
  const t = String(timestamp);
  const n = t.length + 1 + body.byteLength;
  let out: Uint8Array;
  if (n > SCRATCH_MAX) out = new Uint8Array(n);
  else {
    if (scratch.byteLength < n) scratch = new Uint8Array(Math.min(SCRATCH_MAX, Math.max(n, 64 * 1024)));
    out = scratch;
  }
  for (let i = 0; i < t.length; i++) out[i] = t.charCodeAt(i);
  out[t.length] = 0x2e; // "."
  out.set(body, t.length + 1);
  return out.subarray(0, n);
}

/**
 * The MAC check alone, for a header that `checkHeader` has already parsed and found fresh (the
 * webhook handler checks the header before it reads the body, and need not parse it twice).
 */
export async function verifyParsed(parsed: SignatureHeader, body: Uint8Array, opts: VerifyOptions): Promise<void> {
  for (const secret of opts.secrets) {
    const key = await hmacKey(secret);
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, signedMessage(parsed.timestamp, body)));
    // Check every candidate, not just the first, so that timing says nothing about which one matched.
    let ok = false;
    for (const candidate of parsed.signatures) ok = macEquals(mac, candidate) || ok;
    if (ok) return;
  }
  throw signatureMismatch();
}

export const signatureMismatch = () =>
  unauthorized("signature_mismatch", "The ElevenLabs-Signature does not match the body for any configured secret.");
