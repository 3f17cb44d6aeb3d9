/**
 * Incremental base64 decoder for `data.full_audio`, fed in pieces of any size split anywhere.
 * Pure: no bindings.
 *
 * Why not `Uint8Array.fromBase64` per block: it needs whole 4-character quanta per call (so every
 * block boundary needs stitching) and, measured in this workerd, feeding it one string per block
 * made the process grow by 40-60 MB on a 150 MB body; this table-driven loop writes into one reused
 * output block and stays flat.
 *
 * Accepted input follows WHATWG "forgiving base64" (what `atob` accepts): the standard alphabet,
 * ASCII whitespace anywhere (skipped), optional `=` padding that must be complete when present, no
 * data after the padding. Bits left over in the last quantum are ignored, as `atob` does.
 */

const INVALID = 255;
const PAD = 254;
const SPACE = 253;

const TABLE = (() => {
  const t = new Uint8Array(256).fill(INVALID);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (let i = 0; i < alphabet.length; i++) t[alphabet.charCodeAt(i)] = i;
  t[0x3d] = PAD;
  for (const c of [0x09, 0x0a, 0x0c, 0x0d, 0x20]) t[c] = SPACE;
  return t;
})();

export class Base64Error extends Error {
  constructor(
    message: string,
    /** How many input characters had been accepted before the error (whitespace included). */
    readonly offset: number,
  ) {
    super(message);
    this.name = "Base64Error";
  }
}

/** Called with decoded bytes; the view is only valid during the call (its memory is reused). */
export type ByteSink = (bytes: Uint8Array) => void;

/** Output block: decoded bytes are handed on in pieces of at most this many bytes. */
export const DEFAULT_OUTPUT_BYTES = 48 * 1024;

export class Base64Decoder {
  private readonly out: Uint8Array;
  private outPos = 0;
  /** Sextets of the current quantum, packed into the low bits of `acc`. */
  private acc = 0;
  private have = 0;
  /** `=` seen at the end of the current quantum. */
  private pads = 0;
  private done = false;
  private consumed = 0;
  private totalOut = 0;

  constructor(
    private readonly sink: ByteSink,
    outputBytes = DEFAULT_OUTPUT_BYTES,
  ) {
    // Three bytes come out per quantum: keep the block a multiple of 3 so a quantum never straddles it.
    this.out = new Uint8Array(Math.max(3, outputBytes - (outputBytes % 3)));
  }

  /** Bytes decoded so far (including those still waiting in the output block). */
  get bytesOut(): number {
    return this.totalOut + this.outPos;
  }

  /** Decodes `src[start, end)`. Throws `Base64Error` on the first character that cannot be base64. */
  write(src: Uint8Array, start = 0, end = src.length): void {
    if (this.done) throw new Base64Error("The decoder was already finished.", this.consumed);
    const out = this.out;
    const cap = out.length;
    let acc = this.acc;
    let have = this.have;
    let outPos = this.outPos;
    let i = start;
    try {
      while (i < end) {
        const v = TABLE[src[i]!]!;
        if (v < 64) {
          if (this.pads !== 0) throw new Base64Error("Data after `=` padding.", this.consumed + (i - start));
          acc = (acc << 6) | v;
          if (++have === 4) {
            if (outPos === cap) {
              this.flushOut(outPos);
              outPos = 0;
            }
            out[outPos] = acc >>> 16;
            out[outPos + 1] = (acc >>> 8) & 0xff;
            out[outPos + 2] = acc & 0xff;
            outPos += 3;
            acc = 0;
            have = 0;
          }
        } else if (v === SPACE) {
          // skipped, as atob does
        } else if (v === PAD) {
          // `=` may only complete a quantum of 2 (as "==") or 3 (as "=") characters.
          if (have < 2 || have + this.pads >= 4) {
            throw new Base64Error("Misplaced `=` padding.", this.consumed + (i - start));
          }
          this.pads++;
        } else {
          throw new Base64Error(`Byte 0x${src[i]!.toString(16).padStart(2, "0")} is not base64.`, this.consumed + (i - start));
        }
        i++;
      }
    } finally {
      this.consumed += i - start;
      this.acc = acc;
      this.have = have;
      this.outPos = outPos;
    }
  }

  /** Ends the input: emits the last one or two bytes and hands on everything still buffered. */
  finish(): void {
    if (this.done) return;
    const have = this.have;
    if (have === 1) throw new Base64Error("The base64 text ends in the middle of a byte.", this.consumed);
    if (this.pads !== 0 && have + this.pads !== 4) throw new Base64Error("Incomplete `=` padding.", this.consumed);
    this.done = true;
    if (this.outPos + 2 > this.out.length) {
      this.flushOut(this.outPos);
      this.outPos = 0;
    }
    if (have === 2) {
      this.out[this.outPos++] = this.acc >>> 4;
    } else if (have === 3) {
      this.out[this.outPos++] = this.acc >>> 10;
      this.out[this.outPos++] = (this.acc >>> 2) & 0xff;
    }
    this.flushOut(this.outPos);
    this.outPos = 0;
  }

  private flushOut(n: number): void {
    if (n === 0) return;
    this.totalOut += n;
    this.sink(this.out.subarray(0, n));
  }
}
