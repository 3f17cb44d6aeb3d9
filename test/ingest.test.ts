/**
 * The whole one-pass pipeline (block coalescing -> HMAC + JSON scanner -> base64 -> R2 parts) on a
 * small sample, split at every possible chunk boundary, with tiny blocks and parts so that every
 * boundary of every stage is crossed. R2 is an in-memory bucket that enforces R2's part rules.
 */
import { describe, expect, it } from "vitest";
import { AudioUpload, type AudioBucket } from "../src/storage/audio-upload";
import { ingestBody, type IngestedBody } from "../src/webhooks/ingest";
import { hexToBytes, sign } from "../src/webhooks/signature";
import { SignatureCheck } from "../src/webhooks/streaming-hmac";
import { audioBytes, base64Of, sha256Hex } from "./audio-helpers";

const enc = new TextEncoder();
const T = 1_700_000_000;

class MemoryBucket implements AudioBucket {
  readonly objects = new Map<string, Uint8Array>();
  readonly aborted: string[] = [];

  constructor(private readonly partBytes: number) {}

  async put(key: string, value: unknown): Promise<R2Object> {
    this.objects.set(key, new Uint8Array(value as Uint8Array));
    return {} as R2Object;
  }

  async delete(): Promise<void> {}

  async createMultipartUpload(key: string): Promise<R2MultipartUpload> {
    const parts = new Map<number, Uint8Array>();
    return {
      key,
      uploadId: "u1",
      uploadPart: async (n: number, value: unknown) => {
        parts.set(n, new Uint8Array(value as Uint8Array));
        return { partNumber: n, etag: `e${n}` };
      },
      abort: async () => {
        this.aborted.push(key);
      },
      complete: async (uploaded: R2UploadedPart[]) => {
        const sizes = uploaded.map((p) => parts.get(p.partNumber)!.length);
        // R2's rule: every part but the last has the same size.
        if (sizes.slice(0, -1).some((s) => s !== this.partBytes)) throw new Error(`unequal parts ${sizes}`);
        const all = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
        let off = 0;
        for (const p of uploaded) {
          all.set(parts.get(p.partNumber)!, off);
          off += parts.get(p.partNumber)!.length;
        }
        this.objects.set(key, all);
        return {} as R2Object;
      },
    } as unknown as R2MultipartUpload;
  }
}

function streamOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    pull(c) {
      if (i < chunks.length) c.enqueue(chunks[i++]!);
      else c.close();
    },
  });
}

async function ingest(chunks: Uint8Array[], blockBytes: number, partBytes: number) {
  const bucket = new MemoryBucket(partBytes);
  let upload: AudioUpload | null = null;
  const body: IngestedBody = await ingestBody(streamOf(chunks), {
    startMac: () => SignatureCheck.start(["secret"], T),
    maxRestBytes: 10_000,
    blockBytes,
    openAudio: () => (upload = new AudioUpload(bucket, "audio/x.mp3", partBytes)),
  });
  const stored = upload ? await (upload as AudioUpload).complete() : null;
  return { body, stored, object: bucket.objects.get("audio/x.mp3") };
}

describe("ingestBody", () => {
  const audio = audioBytes(47, 3);
  const b64 = base64Of(audio).replace(/\//g, "\\/");
  const doc = `{"data":{"full_audio":"${b64}","conversation_id":"c1"},"type":"post_call_audio"}`;
  const bytes = enc.encode(doc);

  it("gives the same rest, audio, hash and signature for every split, block and part size", async () => {
    const mac = hexToBytes(await sign("secret", T, bytes));
    const expectedSha = await sha256Hex(audio);
    const rest = `{"data":{"full_audio":"","conversation_id":"c1"},"type":"post_call_audio"}`;
    let runs = 0;
    for (const [blockBytes, partBytes] of [[1, 5], [3, 7], [7, 1], [64, 47], [1 << 16, 1 << 20]] as const) {
      for (let cut = 0; cut <= bytes.length; cut++) {
        const r = await ingest([bytes.slice(0, cut), bytes.slice(cut)], blockBytes, partBytes);
        expect(new TextDecoder().decode(r.body.rest)).toBe(rest);
        expect(r.body).toMatchObject({ audioValues: 1, jsonError: null, audioError: null, bodyBytes: bytes.length });
        expect(r.object).toEqual(audio);
        expect(r.stored).toMatchObject({ bytes: 47, sha256: expectedSha });
        expect(await r.body.mac!.matches([mac])).toBe(true);
        runs++;
      }
    }
    expect(runs).toBe(5 * (bytes.length + 1));
  });

  it("keeps a body without audio byte for byte, and refuses more than the limit", async () => {
    const other = enc.encode(`{"type":"post_call_transcription","data":{"conversation_id":"c","x":"${"y".repeat(9000)}"}}`);
    const r = await ingest([other], 100, 5);
    expect(r.body.rest).toEqual(other);
    expect(r.body.mac).toBeNull(); // kept whole: verified in one shot
    expect(r.stored).toBeNull();
    const tooBig = enc.encode(`{"type":"t","x":"${"y".repeat(10_001)}"}`);
    await expect(ingest([tooBig], 100, 5)).rejects.toMatchObject({ status: 413, code: "payload_too_large" });
  });

  it("reports bad base64 and bad JSON without throwing, and reads to the end", async () => {
    const badAudio = enc.encode(`{"data":{"full_audio":"QU*D"},"type":"t"}`);
    const a = await ingestBody(streamOf([badAudio]), {
      startMac: () => SignatureCheck.start(["s"], T),
      maxRestBytes: 1000,
      openAudio: () => new AudioUpload(new MemoryBucket(5), "k", 5),
    });
    expect(a.audioError?.message).toMatch(/not base64/);
    expect(a.jsonError).toBeNull();
    const badJson = enc.encode(`{"data":{"full_audio":"QUJD"}]`);
    const j = await ingestBody(streamOf([badJson]), {
      startMac: () => SignatureCheck.start(["s"], T),
      maxRestBytes: 1000,
      openAudio: () => new AudioUpload(new MemoryBucket(5), "k", 5),
    });
    expect(j.jsonError?.message).toMatch(/Expected ',' or a closing bracket at byte 29/);
    expect(j.bodyBytes).toBe(badJson.length);
  });
});
