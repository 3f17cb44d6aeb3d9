/**
 * HMAC-SHA256 computed incrementally, for bodies too large to hold: Web Crypto's HMAC is one-shot,
 * but `crypto.DigestStream` (a Workers runtime API, no binding) hashes a stream. RFC 2104:
 *   HMAC(K, m) = SHA-256((K' ^ opad) || SHA-256((K' ^ ipad) || m))
 * where K' is the key padded to the 64-byte block, or SHA-256(K) padded when K is longer.
 * Here m = `<t>.` || body, as ElevenLabs signs it (docs/elevenlabs.md#signature-mac).
 */
import { macEquals } from "./signature";

const BLOCK = 64;
const encoder = new TextEncoder();

interface PaddedKeys {
  ipad: Uint8Array;
  opad: Uint8Array;
}

// Derived once per secret per isolate, like the CryptoKeys of the one-shot path.
const padCache = new Map<string, Promise<PaddedKeys>>();

async function paddedKeys(secret: string): Promise<PaddedKeys> {
  let raw = encoder.encode(secret);
  if (raw.byteLength > BLOCK) raw = new Uint8Array(await crypto.subtle.digest("SHA-256", raw));
  const ipad = new Uint8Array(BLOCK).fill(0x36);
  const opad = new Uint8Array(BLOCK).fill(0x5c);
  for (let i = 0; i < raw.byteLength; i++) {
    ipad[i]! ^= raw[i]!;
    opad[i]! ^= raw[i]!;
  }
  return { ipad, opad };
}

function cachedKeys(secret: string): Promise<PaddedKeys> {
  let keys = padCache.get(secret);
  if (!keys) {
    keys = paddedKeys(secret);
    padCache.set(secret, keys);
    keys.catch(() => padCache.delete(secret));
  }
  return keys;
}

export class StreamingHmac {
  private constructor(
    private readonly inner: DigestStream,
    private readonly writer: WritableStreamDefaultWriter<ArrayBuffer | ArrayBufferView>,
    private readonly opad: Uint8Array,
  ) {}

  /** Starts the MAC of `<timestamp>.` followed by whatever `update` is given. */
  static async start(secret: string, timestamp: number): Promise<StreamingHmac> {
    const { ipad, opad } = await cachedKeys(secret);
    const inner = new crypto.DigestStream("SHA-256");
    const writer = inner.getWriter();
    // Copies: the cached pads are shared by every request of the isolate.
    void writer.write(ipad.slice());
    void writer.write(encoder.encode(`${timestamp}.`));
    return new StreamingHmac(inner, writer, opad);
  }

  /**
   * Adds bytes to the message. The returned promise settles once the bytes have been consumed: a
   * caller that reuses `bytes`' memory must wait for it first.
   */
  update(bytes: Uint8Array): Promise<void> {
    return this.writer.write(bytes);
  }

  async digest(): Promise<Uint8Array> {
    await this.writer.close();
    const innerHash = new Uint8Array(await this.inner.digest);
    const outer = new Uint8Array(BLOCK + innerHash.byteLength);
    outer.set(this.opad, 0);
    outer.set(innerHash, BLOCK);
    return new Uint8Array(await crypto.subtle.digest("SHA-256", outer));
  }

  /** Abandons the MAC (the request failed before the end of its body). */
  abort(): void {
    // Aborting rejects `digest` too; nobody will read it.
    this.inner.digest.catch(() => {});
    this.writer.abort().catch(() => {});
  }
}

/**
 * One MAC per configured secret over the same bytes, so that any of them may have signed the body
 * (rotation), checked against every `v0` of the header in constant time.
 */
export class SignatureCheck {
  private constructor(private readonly macs: StreamingHmac[]) {}

  static async start(secrets: readonly string[], timestamp: number): Promise<SignatureCheck> {
    return new SignatureCheck(await Promise.all(secrets.map((s) => StreamingHmac.start(s, timestamp))));
  }

  update(bytes: Uint8Array): Promise<unknown> {
    return this.macs.length === 1 ? this.macs[0]!.update(bytes) : Promise.all(this.macs.map((m) => m.update(bytes)));
  }

  /** True when one of the secrets' MACs equals one of `candidates`. Every pair is compared. */
  async matches(candidates: readonly Uint8Array[]): Promise<boolean> {
    let ok = false;
    for (const mac of await Promise.all(this.macs.map((m) => m.digest()))) {
      for (const candidate of candidates) ok = macEquals(mac, candidate) || ok;
    }
    return ok;
  }

  abort(): void {
    for (const m of this.macs) m.abort();
  }
}
