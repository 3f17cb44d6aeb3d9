/**
 * Baseline 2: the storage floor of ingest. It makes exactly the storage round trips that
 * `POST /webhooks/elevenlabs` makes for a transcription (docs/webhook-path.md), with no
 * verification, parsing, normalisation or memory logic:
 *
 * - request path: the body is read (any receiver must take the bytes off the wire), then ONE RPC to
 *   a per-user Durable Object, which commits ONE SQLite transaction (one outbox row) and schedules
 *   its alarm exactly as UserMemory does; the 200 is sent when that RPC returns.
 * - alarm (after the 200): ONE R2 put, then ONE D1 batch with the same statements as the real
 *   conversation batch: one conversation row, then `FLOOR_TURN_ROWS` rows in statements of 14 (as
 *   src/storage/conversations.ts does; the harness sets it from the payload it sends), one user
 *   directory upsert, and the one-row read that looks for the conversation's audio; then the
 *   outbox row is deleted. (The real service's full-text trigger and recomputed directory count
 *   are its own logic, not part of the floor.)
 *
 * `FLOOR_CONTENT` = "trivial" (the floor): the outbox row, the R2 object and the D1 rows
 * hold a few bytes. "same": they hold as many bytes as the real service stores (the raw body in the
 * outbox and in R2, turn-sized text in D1), to show how much of the gap to the service is the size
 * of what it stores rather than its logic.
 *
 * Users are spread like the real scenario: `FLOOR_USERS` objects, one picked at random per request
 * (the floor does not parse the body, so it cannot read the user id from it).
 */
import { DurableObject } from "cloudflare:workers";

interface FloorEnv {
  DB: D1Database;
  AUDIO: R2Bucket;
  USER_MEMORY: DurableObjectNamespace<UserMemory>;
  FLOOR_USERS: string;
  FLOOR_TURN_ROWS: string;
  FLOOR_CONTENT: "trivial" | "same";
}

// Turns per INSERT in src/storage/conversations.ts (100 bound parameters / 7 columns).
const ROWS_PER_STATEMENT = 14;
// Bytes of text per stored row when FLOOR_CONTENT = "same": what postcall's D1 rows average for
// the bench payload (about 11.6 KB for a conversation row and 53 turns, bench/RESULTS.md).
const TURN_TEXT = 200;
const CONVERSATION_TEXT = 1000;

export class UserMemory extends DurableObject<FloorEnv> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: FloorEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, raw BLOB)");
  }

  async record(id: string, raw: Uint8Array | null): Promise<void> {
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("INSERT INTO outbox (id, raw) VALUES (?, ?)", id, raw === null ? null : raw.buffer);
    });
    // The same scheduling the real object does (src/memory/user-memory.ts, scheduleFlush).
    const current = await this.ctx.storage.getAlarm();
    const at = Date.now();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }

  override async alarm(): Promise<void> {
    const turnRows = Number(this.env.FLOOR_TURN_ROWS);
    const due = this.sql.exec<{ seq: number; id: string; raw: ArrayBuffer | null }>("SELECT seq, id, raw FROM outbox ORDER BY seq LIMIT 25").toArray();
    for (const { seq, id, raw } of due) {
      await this.env.AUDIO.put(`floor/${id}`, raw ?? "{}");
      const text = raw === null ? null : new TextDecoder().decode(raw);
      const slice = (n: number, i: number) => (text === null ? null : text.slice((i * n) % (text.length - n), ((i * n) % (text.length - n)) + n));
      const batch: D1PreparedStatement[] = [this.env.DB.prepare("INSERT INTO floor_events (id, text) VALUES (?, ?)").bind(id, slice(CONVERSATION_TEXT, 0))];
      for (let first = 0; first < turnRows; first += ROWS_PER_STATEMENT) {
        const n = Math.min(ROWS_PER_STATEMENT, turnRows - first);
        const params: unknown[] = [];
        for (let i = first; i < first + n; i++) params.push(id, i, slice(TURN_TEXT, i));
        const values = Array.from({ length: n }, () => "(?, ?, ?)").join(", ");
        batch.push(this.env.DB.prepare(`INSERT INTO floor_rows (id, i, text) VALUES ${values}`).bind(...params));
      }
      batch.push(
        this.env.DB.prepare("INSERT INTO floor_users (user_id, n) VALUES (?, 1) ON CONFLICT (user_id) DO UPDATE SET n = n + 1").bind(this.ctx.id.toString()),
        this.env.DB.prepare("SELECT 1 AS found FROM floor_events WHERE id = ?").bind(`${id}-audio`),
      );
      await this.env.DB.batch(batch);
      this.sql.exec("DELETE FROM outbox WHERE seq = ?", seq);
    }
    if (this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox").one().n > 0) await this.ctx.storage.setAlarm(Date.now());
  }
}

export default {
  async fetch(request, env) {
    const body = new Uint8Array(await request.arrayBuffer());
    const user = Math.floor(Math.random() * Number(env.FLOOR_USERS));
    const stub = env.USER_MEMORY.get(env.USER_MEMORY.idFromName(`user:floor-${user}`));
    await stub.record(crypto.randomUUID(), env.FLOOR_CONTENT === "same" ? body : null);
    return Response.json({ status: "stored" });
  },
} satisfies ExportedHandler<FloorEnv>;
