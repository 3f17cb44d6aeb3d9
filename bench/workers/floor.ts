/**
 * Baseline 2: the storage floor of ingest. It makes exactly the storage round trips that
 * `POST /webhooks/elevenlabs` makes for a transcription (see docs/webhook-path.md), with trivial
 * contents and no verification, parsing or normalisation:
 *
 * - request path: the body is read (any receiver must take the bytes off the wire), then ONE RPC to
 *   a per-user Durable Object, which commits ONE SQLite transaction (one small row) and schedules
 *   its alarm exactly as UserMemory does; the 200 is sent when that RPC returns.
 * - alarm (after the 200): ONE R2 put, then ONE D1 batch with the same statements and rows as the
 *   real conversation + turns batch (one row, then `FLOOR_TURN_ROWS` rows in statements of 14, as
 *   src/storage/conversations.ts does; the harness sets it from the payload it sends), then the
 *   local row is deleted.
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
}

// Turns per INSERT in src/storage/conversations.ts (100 bound parameters / 7 columns).
const ROWS_PER_STATEMENT = 14;

export class UserMemory extends DurableObject<FloorEnv> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: FloorEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL)");
  }

  async record(id: string): Promise<void> {
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("INSERT INTO outbox (id) VALUES (?)", id);
    });
    // The same scheduling the real object does (src/memory/user-memory.ts, scheduleFlush).
    const current = await this.ctx.storage.getAlarm();
    const at = Date.now();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }

  override async alarm(): Promise<void> {
    const turnRows = Number(this.env.FLOOR_TURN_ROWS);
    const due = this.sql.exec<{ seq: number; id: string }>("SELECT seq, id FROM outbox ORDER BY seq LIMIT 25").toArray();
    for (const { seq, id } of due) {
      await this.env.AUDIO.put(`floor/${id}`, "{}");
      const batch: D1PreparedStatement[] = [this.env.DB.prepare("INSERT INTO floor_events (id) VALUES (?)").bind(id)];
      for (let first = 0; first < turnRows; first += ROWS_PER_STATEMENT) {
        const n = Math.min(ROWS_PER_STATEMENT, turnRows - first);
        const params: unknown[] = [];
        for (let i = first; i < first + n; i++) params.push(id, i);
        const values = Array.from({ length: n }, () => "(?, ?)").join(", ");
        batch.push(this.env.DB.prepare(`INSERT INTO floor_rows (id, i) VALUES ${values}`).bind(...params));
      }
      await this.env.DB.batch(batch);
      this.sql.exec("DELETE FROM outbox WHERE seq = ?", seq);
    }
    if (this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox").one().n > 0) await this.ctx.storage.setAlarm(Date.now());
  }
}

export default {
  async fetch(request, env) {
    await request.arrayBuffer();
    const user = Math.floor(Math.random() * Number(env.FLOOR_USERS));
    const stub = env.USER_MEMORY.get(env.USER_MEMORY.idFromName(`user:floor-${user}`));
    await stub.record(crypto.randomUUID());
    return Response.json({ status: "stored" });
  },
} satisfies ExportedHandler<FloorEnv>;
