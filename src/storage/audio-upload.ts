/**
 * Writes decoded call audio to R2 while it is still arriving, with memory that does not grow with
 * its size.
 *
 * R2 refuses `put` of a stream of unknown length, and the audio's length is unknown until the body
 * ends (ElevenLabs sends it chunked). So bytes are gathered into parts of `partBytes` and sent as a
 * multipart upload: every part but the last the same size, at least 5 MiB, at most 10,000 parts.
 * Audio shorter than one part never starts a multipart upload: it is one `put` of known length at
 * `complete()`. Nothing becomes visible before `complete()`; `abort()` removes every trace.
 *
 * Memory: the part being filled, at most one part waiting, and one part in flight to R2 (uploading
 * part n overlaps filling part n+1; the reader waits when R2 is slower than the body).
 */
import { ApiError } from "../lib/errors";
import { bytesToHex } from "../lib/bytes";

/** 5 MiB, R2's minimum part size: the smallest memory footprint that R2 accepts. */
export const AUDIO_PART_BYTES = 5 * 1024 * 1024;
export const MAX_PARTS = 10_000;
export const AUDIO_CONTENT_TYPE = "audio/mpeg";

export type AudioBucket = Pick<R2Bucket, "put" | "createMultipartUpload" | "delete">;

export interface StoredAudio {
  key: string;
  bytes: number;
  /** Hex SHA-256 of the stored bytes: the read endpoint's strong ETag. */
  sha256: string;
}

type Phase = "open" | "completed" | "aborted";

export class AudioUpload {
  private part: Uint8Array | null = null;
  private fill = 0;
  private readonly ready: Uint8Array[] = [];
  private upload: R2MultipartUpload | null = null;
  private partsStarted = 0;
  private readonly uploaded: R2UploadedPart[] = [];
  private inflight: Promise<void> | null = null;
  private failure: unknown = null;
  private total = 0;
  private readonly hash = new crypto.DigestStream("SHA-256");
  private readonly hashWriter = this.hash.getWriter();
  private phase: Phase = "open";

  constructor(
    private readonly bucket: AudioBucket,
    readonly key: string,
    private readonly partBytes = AUDIO_PART_BYTES,
  ) {}

  get bytes(): number {
    return this.total;
  }

  /** Whether a full part is waiting for `drain()`. */
  get hasReadyPart(): boolean {
    return this.ready.length > 0;
  }

  /** Copies `bytes` (a view its caller reuses) into the current part. Synchronous. */
  push(bytes: Uint8Array): void {
    if (this.phase !== "open") throw new Error(`audio upload is ${this.phase}`);
    let off = 0;
    while (off < bytes.byteLength) {
      this.part ??= new Uint8Array(this.partBytes);
      const n = Math.min(this.partBytes - this.fill, bytes.byteLength - off);
      this.part.set(bytes.subarray(off, off + n), this.fill);
      this.fill += n;
      off += n;
      if (this.fill === this.partBytes) {
        // Hand the full buffer over instead of copying it: it is never written again, and the next
        // part gets a fresh one.
        this.ready.push(this.part);
        this.hashPart(this.part);
        this.part = null;
        this.fill = 0;
      }
    }
    this.total += bytes.byteLength;
  }

  private hashPart(bytes: Uint8Array): void {
    // Awaited through close() in complete(); after abort() the rejection means nothing.
    this.hashWriter.write(bytes).catch(() => {});
  }

  /** Starts uploading waiting parts, keeping at most one in flight (waits for the previous one). */
  async drain(): Promise<void> {
    while (this.ready.length > 0) {
      await this.settleInflight();
      if (this.partsStarted >= MAX_PARTS) {
        throw new ApiError(413, "audio_too_large", `The audio is larger than R2's ${MAX_PARTS} parts of ${this.partBytes} bytes.`);
      }
      this.upload ??= await this.bucket.createMultipartUpload(this.key, { httpMetadata: { contentType: AUDIO_CONTENT_TYPE } });
      const body = this.ready.shift()!;
      const partNumber = ++this.partsStarted;
      const upload = this.upload;
      this.inflight = upload.uploadPart(partNumber, body).then(
        (p) => {
          this.uploaded.push(p);
        },
        (err: unknown) => {
          this.failure ??= err;
        },
      );
    }
  }

  private async settleInflight(): Promise<void> {
    if (this.inflight) {
      await this.inflight;
      this.inflight = null;
    }
    if (this.failure !== null) throw this.failure;
  }

  /** Makes the object visible under `key`. Call only once the request is known to be good. */
  async complete(): Promise<StoredAudio> {
    if (this.phase !== "open") throw new Error(`audio upload is ${this.phase}`);
    const last = this.part ? this.part.subarray(0, this.fill) : new Uint8Array(0);
    if (last.byteLength > 0) this.hashPart(last);
    if (this.upload === null && this.ready.length === 0) {
      // Shorter than one part: a single put of known length.
      await this.bucket.put(this.key, last, { httpMetadata: { contentType: AUDIO_CONTENT_TYPE } });
    } else {
      if (last.byteLength > 0) this.ready.push(last);
      await this.drain();
      await this.settleInflight();
      const parts = [...this.uploaded].sort((a, b) => a.partNumber - b.partNumber);
      await this.upload!.complete(parts);
    }
    this.phase = "completed";
    this.part = null;
    await this.hashWriter.close();
    return { key: this.key, bytes: this.total, sha256: bytesToHex(new Uint8Array(await this.hash.digest)) };
  }

  /**
   * Leaves nothing behind: waits for the part in flight, then aborts the multipart upload. Safe to
   * call more than once, and after a failed `complete()`. Never throws (it runs on failure paths);
   * an upload whose abort fails is logged, and R2 expires incomplete uploads by itself.
   */
  async abort(): Promise<void> {
    if (this.phase !== "open") return;
    this.phase = "aborted";
    this.part = null;
    this.ready.length = 0;
    this.hash.digest.catch(() => {});
    this.hashWriter.abort().catch(() => {});
    await this.inflight?.catch(() => {});
    if (this.upload) {
      try {
        await this.upload.abort();
      } catch (err) {
        console.warn(`could not abort multipart upload of ${this.key}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  /** Removes a completed object that could not be linked to its conversation. Never throws. */
  async discard(): Promise<void> {
    if (this.phase === "open") return this.abort();
    try {
      await this.bucket.delete(this.key);
    } catch (err) {
      console.warn(`could not delete unlinked audio ${this.key}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
