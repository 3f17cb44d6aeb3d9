/**
 * The one pass over a webhook body. Every byte, as it arrives, feeds:
 *  - the JSON scanner, which validates the document and lifts `data.full_audio` out of it;
 *  - for the lifted string only: the base64 decoder, whose bytes go to the R2 upload;
 *  - the streaming HMAC of every configured secret, from the first byte that is not kept.
 * Bytes outside `full_audio` (the whole body, for every event but audio) are kept, up to
 * MAX_BODY_BYTES (413 past it, while reading), so after the end of the body, and once the signature
 * has verified, the event is parsed and dispatched exactly as a buffered body would be.
 *
 * Why the MAC starts late: while every byte so far is kept, the kept bytes ARE the body, and a body
 * that is kept whole (every event but audio) is verified in one shot at the end, which costs half
 * of two DigestStreams per request. The moment a byte is not kept (the audio begins, or the JSON
 * broke), the streaming MAC starts, is fed what was kept so far, then every block.
 *
 * Failures of the content (malformed JSON, bad base64) do not stop the reading: the body is read to
 * its end and the MAC checked first, so a badly signed body is always a 401, whatever it contains.
 * They do stop the audio upload at once (aborted: nothing kept). After a JSON error the scanner can
 * no longer tell audio from the rest, so every further byte counts towards MAX_BODY_BYTES.
 */
import type { AudioUpload } from "../storage/audio-upload";
import { Base64Decoder, Base64Error } from "./base64";
import { concatBytes } from "../lib/bytes";
import { payloadTooLarge } from "./body";
import { JsonScanner, JsonSyntaxError, type ScanSink } from "./json-scan";
import type { SignatureCheck } from "./streaming-hmac";

/**
 * Chunked bodies reach a Worker in pieces of about 1.8 KB. Per-piece work (a promise per hash
 * update, a scanner call) would dominate, so pieces are coalesced into blocks of this size first.
 */
export const READ_BLOCK_BYTES = 64 * 1024;

export interface IngestOptions {
  /** Starts the streaming MAC (one per secret), for bodies that are not kept whole. */
  startMac(): Promise<SignatureCheck>;
  /** Limit on the bytes kept (everything outside `data.full_audio`). */
  maxRestBytes: number;
  /** Opens the upload the audio streams to; called when the `full_audio` string begins. */
  openAudio(): AudioUpload;
  /** Coalescing block size (tests use tiny blocks to exercise every boundary). */
  blockBytes?: number;
}

export interface IngestedBody {
  /** The body without the content of `data.full_audio` (its quotes kept): the body itself for other events. */
  rest: Uint8Array;
  /** The streaming MAC of the whole body, or null when `rest` is the whole body (verify it in one shot). */
  mac: SignatureCheck | null;
  bodyBytes: number;
  /** How many times `data.full_audio` held a string (more than one: duplicate keys). */
  audioValues: number;
  jsonError: JsonSyntaxError | null;
  /** Why `full_audio` could not be decoded, when it could not. */
  audioError: Base64Error | null;
}

class Ingest implements ScanSink {
  private readonly scanner = new JsonScanner(this);
  private readonly chunks: Uint8Array[] = [];
  private restBytes = 0;
  private bodyBytes = 0;
  private values = 0;
  private upload: AudioUpload | null = null;
  private decoder: Base64Decoder | null = null;
  private readonly oneByte = new Uint8Array(1);
  private jsonError: JsonSyntaxError | null = null;
  private audioError: Base64Error | null = null;
  private aborting: Promise<void> | null = null;
  private mac: SignatureCheck | null = null;

  constructor(private readonly opts: IngestOptions) {}

  /** Feeds one block. `bytes` may be reused by the caller once this resolves. */
  async process(bytes: Uint8Array): Promise<void> {
    this.bodyBytes += bytes.byteLength;
    const keptBefore = this.chunks.length;
    let macUpdate: Promise<unknown> | null = this.mac ? this.mac.update(bytes) : null;
    try {
      if (this.jsonError === null) {
        try {
          this.scanner.write(bytes);
        } catch (err) {
          if (!(err instanceof JsonSyntaxError)) throw err;
          this.jsonError = err;
          this.stopAudio();
          this.countRest(bytes.byteLength);
        }
      } else {
        this.countRest(bytes.byteLength);
      }
      if (this.mac === null && (this.values > 0 || this.jsonError !== null)) {
        // The first block not kept whole: everything before it was kept, so it is the body so far.
        this.mac = await this.opts.startMac();
        for (let i = 0; i < keptBefore; i++) await this.mac.update(this.chunks[i]!);
        macUpdate = this.mac.update(bytes);
      }
      if (this.upload?.hasReadyPart && this.audioError === null && this.jsonError === null) await this.upload.drain();
    } finally {
      await macUpdate;
    }
  }

  /** The request failed: the MAC will never be read. */
  abandon(): void {
    this.mac?.abort();
  }

  async finish(): Promise<IngestedBody> {
    if (this.jsonError === null) {
      try {
        this.scanner.finish();
      } catch (err) {
        if (!(err instanceof JsonSyntaxError)) throw err;
        this.jsonError = err;
        this.stopAudio();
      }
    }
    if (this.aborting) await this.aborting;
    return {
      rest: concatBytes(this.chunks, this.restBytes),
      mac: this.mac,
      bodyBytes: this.bodyBytes,
      audioValues: this.values,
      jsonError: this.jsonError,
      audioError: this.audioError,
    };
  }

  // ---- ScanSink ----------------------------------------------------------------------------------

  rest(bytes: Uint8Array): void {
    this.countRest(bytes.byteLength);
    this.chunks.push(bytes.slice());
  }

  valueStart(): void {
    if (++this.values !== 1) return; // a duplicate `full_audio`: refused after the end, not stored
    const upload = this.opts.openAudio();
    this.upload = upload;
    this.decoder = new Base64Decoder((decoded) => upload.push(decoded));
  }

  valueBytes(bytes: Uint8Array): void {
    this.decode(bytes);
  }

  valueCodeUnit(unit: number): void {
    // `\/` is common (some encoders escape every slash); anything decoding past ASCII is not base64.
    if (unit >= 0x80) {
      if (this.decoder) this.audioFailed(new Base64Error(`Escaped character U+${unit.toString(16).padStart(4, "0")} is not base64.`, 0));
      return;
    }
    this.oneByte[0] = unit;
    this.decode(this.oneByte);
  }

  valueEnd(): void {
    const decoder = this.decoder;
    this.decoder = null;
    if (!decoder) return;
    try {
      decoder.finish();
    } catch (err) {
      if (!(err instanceof Base64Error)) throw err;
      this.audioFailed(err);
    }
  }

  // ------------------------------------------------------------------------------------------------

  private decode(bytes: Uint8Array): void {
    if (!this.decoder) return;
    try {
      this.decoder.write(bytes);
    } catch (err) {
      if (!(err instanceof Base64Error)) throw err;
      this.audioFailed(err);
    }
  }

  private audioFailed(err: Base64Error): void {
    this.audioError ??= err;
    this.decoder = null;
    this.stopAudio();
  }

  private stopAudio(): void {
    this.decoder = null;
    if (this.upload && !this.aborting) this.aborting = this.upload.abort();
  }

  private countRest(n: number): void {
    this.restBytes += n;
    if (this.restBytes > this.opts.maxRestBytes) throw payloadTooLarge(this.opts.maxRestBytes);
  }
}

/**
 * Reads `body` to its end in one pass (see the file comment). Throws a 413 `ApiError` past the
 * limit, or whatever reading the body throws (a client that went away); the caller then aborts the
 * audio upload it was given through `openAudio`.
 */
export async function ingestBody(body: ReadableStream<Uint8Array> | null, opts: IngestOptions): Promise<IngestedBody> {
  const ingest = new Ingest(opts);
  if (body) {
    const reader = body.getReader();
    const size = opts.blockBytes ?? READ_BLOCK_BYTES;
    const block = new Uint8Array(size);
    let fill = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (fill === 0 && value.byteLength >= size) {
          // Already a big piece, and ours alone: no need to copy it.
          await ingest.process(value);
          continue;
        }
        let off = 0;
        while (off < value.byteLength) {
          const n = Math.min(size - fill, value.byteLength - off);
          block.set(value.subarray(off, off + n), fill);
          fill += n;
          off += n;
          if (fill === size) {
            await ingest.process(block);
            fill = 0;
          }
        }
      }
      if (fill > 0) await ingest.process(block.subarray(0, fill));
    } catch (err) {
      reader.cancel().catch(() => {});
      ingest.abandon();
      throw err;
    }
  }
  return ingest.finish();
}
