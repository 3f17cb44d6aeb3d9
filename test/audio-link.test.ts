/**
 * Signed audio links (src/lib/audio-link.ts): POST /v1/conversations/:id/audio/link mints a URL the
 * console's <audio> element streams with Range requests and no API key. A new entry point to the
 * audio, so it is held to the old one's rules: it cannot be forged, moved to another conversation or
 * route, or used after it expires, and an erased recording does not play through it.
 */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { AUDIO_LINK_SECONDS, mintAudioLink } from "../src/lib/audio-link";
import { audioBytes, audioEvent, postChunked } from "./audio-helpers";
import { API_KEY, BASE, apiGet, flush, nowSeconds, postWebhook, transcription, uid, userIdOf } from "./helpers";

const KEYS = ["test-api-key", "test-api-key-2"];

async function storedAudio(bytes = audioBytes(50_000, 9)): Promise<{ conversationId: string; bytes: Uint8Array }> {
  const e = audioEvent(bytes);
  expect((await postChunked(e.body)).status).toBe(200);
  return { conversationId: e.conversationId, bytes };
}

async function mint(conversationId: string, key: string | null = API_KEY): Promise<Response> {
  return apiGet(`/v1/conversations/${encodeURIComponent(conversationId)}/audio/link`, key, { method: "POST" });
}

async function linkOf(conversationId: string): Promise<{ url: string; expires_at: string; bytes: number }> {
  const res = await mint(conversationId);
  expect(res.status).toBe(200);
  return res.json();
}

/** A GET with no Authorization header at all, as an <audio> element sends it. */
const play = (path: string, headers: Record<string, string> = {}) => SELF.fetch(`${BASE}${path}`, { headers });

const errorCode = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;

describe("signed audio links", () => {
  it("stream the recording without a key, and seek with Range", async () => {
    const { conversationId, bytes } = await storedAudio();
    const link = await linkOf(conversationId);
    expect(link.bytes).toBe(bytes.length);
    expect(link.url).toMatch(new RegExp(`^/v1/conversations/${conversationId}/audio\\?expires=\\d+&signature=[\\w-]+$`));
    const expiresIn = Date.parse(link.expires_at) / 1000 - nowSeconds();
    expect(expiresIn).toBeGreaterThan(AUDIO_LINK_SECONDS - 10);
    expect(expiresIn).toBeLessThanOrEqual(AUDIO_LINK_SECONDS);

    const whole = await play(link.url);
    expect(whole.status).toBe(200);
    expect(new Uint8Array(await whole.arrayBuffer())).toEqual(bytes);
    const part = await play(link.url, { Range: "bytes=40000-40009" });
    expect(part.status).toBe(206);
    expect(part.headers.get("Content-Range")).toBe(`bytes 40000-40009/${bytes.length}`);
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(bytes.slice(40000, 40010));
  });

  it("cannot be forged, edited, or moved to another conversation", async () => {
    const a = await storedAudio();
    const b = await storedAudio(audioBytes(2_000, 3));
    const link = new URL(`${BASE}${(await linkOf(a.conversationId)).url}`);
    const signature = link.searchParams.get("signature")!;
    const expires = link.searchParams.get("expires")!;
    const flipped = (signature[0] === "A" ? "B" : "A") + signature.slice(1);
    const cases: [string, string][] = [
      [`/v1/conversations/${b.conversationId}/audio?expires=${expires}&signature=${signature}`, "audio_link_invalid"],
      [`/v1/conversations/${a.conversationId}/audio?expires=${expires}&signature=${flipped}`, "audio_link_invalid"],
      [`/v1/conversations/${a.conversationId}/audio?expires=${Number(expires) + 60}&signature=${signature}`, "audio_link_invalid"],
      [`/v1/conversations/${a.conversationId}/audio?expires=${expires}&signature=`, "audio_link_invalid"],
      [`/v1/conversations/${a.conversationId}/audio?signature=${signature}`, "audio_link_invalid"],
      [`/v1/conversations/${a.conversationId}/audio?expires=soon&signature=${signature}`, "audio_link_invalid"],
    ];
    for (const [path, code] of cases) {
      const res = await play(path);
      expect(res.status, path).toBe(401);
      expect(await errorCode(res), path).toBe(code);
    }
    // A link made with a key this deployment does not hold.
    const foreign = await mintAudioLink(["someone-elses-key"], a.conversationId, nowSeconds() + 60);
    expect((await play(`/v1/conversations/${a.conversationId}/audio?${foreign}`)).status).toBe(401);
  });

  it("authorises that one GET only: no other route, no other method", async () => {
    const { conversationId } = await storedAudio();
    const query = new URL(`${BASE}${(await linkOf(conversationId)).url}`).search;
    for (const path of [`/v1/conversations/${conversationId}${query}`, `/v1/conversations/${conversationId}/audio/link${query}`, `/v1/users${query}`]) {
      expect((await play(path)).status, path).toBe(401);
    }
    const post = await SELF.fetch(`${BASE}/v1/conversations/${conversationId}/audio/backfill${query}`, { method: "POST" });
    expect(post.status).toBe(401);
  });

  it("expires: an old link is refused, and one reaching too far ahead is refused even when well signed", async () => {
    const { conversationId } = await storedAudio();
    const expired = await mintAudioLink(KEYS, conversationId, nowSeconds() - 1);
    const res = await play(`/v1/conversations/${conversationId}/audio?${expired}`);
    expect(res.status).toBe(401);
    expect(await errorCode(res)).toBe("audio_link_expired");
    const tooLong = await mintAudioLink(KEYS, conversationId, nowSeconds() + 7 * 86400);
    expect((await play(`/v1/conversations/${conversationId}/audio?${tooLong}`)).status).toBe(401);
  });

  it("rotates with API_KEY: a link signed with the second key plays", async () => {
    const { conversationId, bytes } = await storedAudio();
    const query = await mintAudioLink(["test-api-key-2"], conversationId, nowSeconds() + 60);
    const res = await play(`/v1/conversations/${conversationId}/audio?${query}`);
    expect(res.status).toBe(200);
    expect((await res.arrayBuffer()).byteLength).toBe(bytes.length);
  });

  it("is minted only with the full API key, and only for stored audio", async () => {
    const { conversationId } = await storedAudio();
    expect((await mint(conversationId, null)).status).toBe(401);
    expect((await mint(conversationId, "test-agent-key")).status).toBe(403);
    const none = await mint(uid("conv_no_audio"));
    expect(none.status).toBe(404);
    expect(await errorCode(none)).toBe("audio_not_found");
  });

  it("stops playing once the recording is erased, though the link has not expired", async () => {
    const event = transcription({ title: "Erase my recording" });
    const userId = userIdOf(event)!;
    const conversationId = event["data"].conversation_id as string;
    expect((await postWebhook(event)).status).toBe(200);
    const e = audioEvent(audioBytes(3_000, 5), { conversationId });
    expect((await postChunked(e.body)).status).toBe(200);
    await flush(userId, conversationId);
    const link = await linkOf(conversationId);
    const before = await play(link.url);
    expect(before.status).toBe(200);
    expect((await before.arrayBuffer()).byteLength).toBe(3_000);

    expect((await apiGet(`/v1/users/${encodeURIComponent(userId)}`, API_KEY, { method: "DELETE" })).status).toBe(200);
    const after = await play(link.url);
    expect(after.status).toBe(404);
    expect(await errorCode(after)).toBe("audio_not_found");
    expect((await mint(conversationId)).status).toBe(404);
  });
});
