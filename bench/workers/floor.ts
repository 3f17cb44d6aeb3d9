/**
 * Baseline: the storage floor of ingest in the Core v2 layout. It makes exactly the storage round
 * trips that v2's `POST /webhooks/elevenlabs` makes for a transcription, with no verification,
 * parsing, normalisation, compression or memory logic:
 *
 * - request path: the body is read (any receiver must take the bytes off the wire), then ONE RPC to
 *   a per-user Durable Object (SQLite-backed), whose ONE SQLite transaction writes a dedupe row, a
 *   memory/profile update, a recent-conversation row, an outbox row and the raw body as blob
 *   part(s), and schedules the alarm exactly as UserMemory does; the 200 is sent when it returns.
 * - alarm (after the 200): ONE R2 put (the raw body), then ONE D1 batch of four statements: the
 *   conversation as ONE row (metadata + the transcript as a compressed blob), ONE document in a
 *   contentless FTS5 table (the turns' text joined), the `users` directory upsert, and the SELECT
 *   that looks up the conversation's `audio` row; then ONE SQLite transaction deletes the outbox row
 *   and its blob parts. No per-turn rows.
 *
 * `FLOOR_CONTENT` = "trivial" (the floor proper): every row, blob and object holds a few bytes.
 * "same" (floorBytes): as many bytes as postcall v2 stores: the raw body in the Durable Object and in
 * R2, a conversation row of realistic size (`FLOOR_META`, the metadata columns of the bench payload,
 * and `FLOOR_TRANSCRIPT_B64`, its transcript gzipped), the FTS document with the payload's real turn
 * text (`FLOOR_FTS_TEXT`), and the payload's summary in the profile and recent rows
 * (`FLOOR_SUMMARY`). The harness computes these once from the bench payload (bench/lib/payloads.mjs,
 * `floorContent`) so the floor stores the bytes without paying for the work that produces them.
 *
 * Users are spread like the real scenario: `FLOOR_USERS` objects, one picked at random per request
 * (the floor does not parse the body, so it cannot read the user id from it); conversation ids are
 * random UUIDs. The floor's D1 tables (below, created by `POST /__floor/schema`) hold exactly what
 * it writes, with no secondary indexes.
 */
import { DurableObject } from "cloudflare:workers";

interface FloorEnv {
  DB: D1Database;
  AUDIO: R2Bucket;
  USER_MEMORY: DurableObjectNamespace<UserMemory>;
  FLOOR_USERS: string;
  FLOOR_CONTENT: "trivial" | "same";
  FLOOR_META?: string;
  FLOOR_TRANSCRIPT_B64?: string;
  FLOOR_FTS_TEXT?: string;
  FLOOR_SUMMARY?: string;
}

/** The floor's D1 tables: one row per conversation, its search document, the directory, audio links. */
const D1_SCHEMA = [
  "CREATE TABLE IF NOT EXISTS floor_conversations (conversation_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, started_at INTEGER NOT NULL, meta TEXT NOT NULL, transcript BLOB NOT NULL)",
  "CREATE VIRTUAL TABLE IF NOT EXISTS floor_conversations_fts USING fts5(body, content='', contentless_delete=1, detail='none', tokenize='unicode61 remove_diacritics 2')",
  "CREATE TABLE IF NOT EXISTS floor_users (user_id TEXT PRIMARY KEY, first_call_at INTEGER NOT NULL, last_call_at INTEGER NOT NULL, conversation_count INTEGER NOT NULL)",
  "CREATE TABLE IF NOT EXISTS floor_audio (conversation_id TEXT PRIMARY KEY, r2_key TEXT NOT NULL)",
];

/** The Durable Object's tables, as v2's UserMemory keeps them (the parts that one event touches). */
const DO_SCHEMA = `
CREATE TABLE IF NOT EXISTS seen (conversation_id TEXT PRIMARY KEY, received_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS profile (id INTEGER PRIMARY KEY CHECK (id = 1), call_count INTEGER NOT NULL, last_call_at INTEGER NOT NULL, last_conversation_id TEXT, last_call_summary TEXT);
CREATE TABLE IF NOT EXISTS recent (conversation_id TEXT PRIMARY KEY, started_at INTEGER NOT NULL, summary TEXT);
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, conversation_id TEXT NOT NULL, user_id TEXT NOT NULL, received_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox_blobs (seq INTEGER NOT NULL, part INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (seq, part));
`;

/** DO SQLite refuses values over 2 MB: raw bodies go in parts, as UserMemory stores them. */
const BLOB_PART_BYTES = 1 << 20;
/** Outbox items delivered per alarm run (UserMemory's flushBatch). */
const FLUSH_BATCH = 25;

const TRIVIAL = new Uint8Array([123, 125]); // "{}"

function base64Bytes(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** What each row holds, decoded once per isolate. */
let content: { meta: string; transcript: Uint8Array; fts: string; summary: string | null } | null = null;
function contentOf(env: FloorEnv) {
  if (content === null) {
    content =
      env.FLOOR_CONTENT === "same"
        ? { meta: env.FLOOR_META ?? "{}", transcript: base64Bytes(env.FLOOR_TRANSCRIPT_B64 ?? ""), fts: env.FLOOR_FTS_TEXT ?? "", summary: env.FLOOR_SUMMARY ?? null }
        : { meta: "{}", transcript: TRIVIAL, fts: "hello", summary: null };
  }
  return content;
}

export class UserMemory extends DurableObject<FloorEnv> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: FloorEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(DO_SCHEMA);
  }

  async record(conversationId: string, userId: string, raw: Uint8Array): Promise<void> {
    const now = Date.now();
    const { summary } = contentOf(this.env);
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("INSERT INTO seen (conversation_id, received_at) VALUES (?, ?)", conversationId, now);
      this.sql.exec(
        "INSERT INTO profile (id, call_count, last_call_at, last_conversation_id, last_call_summary) VALUES (1, 1, ?, ?, ?) " +
          "ON CONFLICT (id) DO UPDATE SET call_count = call_count + 1, last_call_at = excluded.last_call_at, last_conversation_id = excluded.last_conversation_id, last_call_summary = excluded.last_call_summary",
        now,
        conversationId,
        summary,
      );
      this.sql.exec("INSERT INTO recent (conversation_id, started_at, summary) VALUES (?, ?, ?)", conversationId, now, summary);
      const { seq } = this.sql
        .exec<{ seq: number }>("INSERT INTO outbox (conversation_id, user_id, received_at) VALUES (?, ?, ?) RETURNING seq", conversationId, userId, now)
        .one();
      for (let part = 0, at = 0; at < raw.byteLength || part === 0; part++, at += BLOB_PART_BYTES) {
        this.sql.exec("INSERT INTO outbox_blobs (seq, part, data) VALUES (?, ?, ?)", seq, part, bufferOf(raw.subarray(at, at + BLOB_PART_BYTES)));
      }
    });
    // The same scheduling the real object does (src/memory/user-memory.ts, scheduleFlush).
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > now) await this.ctx.storage.setAlarm(now);
  }

  override async alarm(): Promise<void> {
    const c = contentOf(this.env);
    const due = this.sql
      .exec<{ seq: number; conversation_id: string; user_id: string; received_at: number }>(
        "SELECT seq, conversation_id, user_id, received_at FROM outbox ORDER BY seq LIMIT ?",
        FLUSH_BATCH,
      )
      .toArray();
    for (const item of due) {
      const parts = this.sql.exec<{ data: ArrayBuffer }>("SELECT data FROM outbox_blobs WHERE seq = ? ORDER BY part", item.seq).toArray();
      const raw = parts.length === 1 ? new Uint8Array(parts[0]!.data) : concat(parts.map((p) => new Uint8Array(p.data)));
      await this.env.AUDIO.put(`floor/${item.conversation_id}/transcript.json`, raw);
      const id = item.conversation_id;
      await this.env.DB.batch([
        this.env.DB.prepare("INSERT INTO floor_conversations (conversation_id, user_id, started_at, meta, transcript) VALUES (?, ?, ?, ?, ?)").bind(
          id,
          item.user_id,
          item.received_at,
          c.meta,
          c.transcript,
        ),
        this.env.DB.prepare("INSERT INTO floor_conversations_fts (rowid, body) VALUES (last_insert_rowid(), ?)").bind(c.fts),
        this.env.DB.prepare(
          "INSERT INTO floor_users (user_id, first_call_at, last_call_at, conversation_count) VALUES (?, ?, ?, 1) " +
            "ON CONFLICT (user_id) DO UPDATE SET last_call_at = max(last_call_at, excluded.last_call_at), conversation_count = conversation_count + 1",
        ).bind(item.user_id, item.received_at, item.received_at),
        this.env.DB.prepare("SELECT r2_key FROM floor_audio WHERE conversation_id = ?").bind(id),
      ]);
      this.ctx.storage.transactionSync(() => {
        this.sql.exec("DELETE FROM outbox_blobs WHERE seq = ?", item.seq);
        this.sql.exec("DELETE FROM outbox WHERE seq = ?", item.seq);
      });
    }
    if (this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox").one().n > 0) await this.ctx.storage.setAlarm(Date.now());
  }
}

/** SQL storage binds ArrayBuffers: the view's own buffer when it covers it, else a copy. */
function bufferOf(view: Uint8Array): ArrayBuffer {
  return view.byteOffset === 0 && view.byteLength === view.buffer.byteLength ? (view.buffer as ArrayBuffer) : (view.slice().buffer as ArrayBuffer);
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/__floor/schema") {
      await env.DB.batch(D1_SCHEMA.map((s) => env.DB.prepare(s)));
      return Response.json({ ok: true });
    }
    const body = new Uint8Array(await request.arrayBuffer());
    const user = `floor-${Math.floor(Math.random() * Number(env.FLOOR_USERS))}`;
    const stub = env.USER_MEMORY.get(env.USER_MEMORY.idFromName(`user:${user}`));
    await stub.record(crypto.randomUUID(), user, env.FLOOR_CONTENT === "same" ? body : TRIVIAL);
    return Response.json({ status: "stored" });
  },
} satisfies ExportedHandler<FloorEnv>;
