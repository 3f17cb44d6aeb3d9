/**
 * Baseline: the read floor of `GET /v1/users/:id/context` (and of the initiation webhook, which
 * answers with the same memory). It makes exactly the round trips a context read makes, with none
 * of the service's logic:
 *
 * - `GET /v1/users/:id/context` with `Authorization: Bearer ...`, as postcall's context scenario
 *   sends it. The header is carried but NOT checked (no API key comparison), the user id is
 *   URL-decoded, then ONE RPC to that user's Durable Object (SQLite-backed, named `user:<id>` as
 *   postcall names it), which reads ONE row of about 1 KB (`SELECT doc FROM context WHERE id = 1`),
 *   and the Worker answers with that document as the JSON body. No rendering of variables, no
 *   defaults, no cache.
 * - `POST /__seed` (harness only, before any load): a JSON array of user ids; each user's object
 *   gets its one row (`READ_FLOOR_DOC_BYTES` bytes of JSON, 1024 unless set).
 *
 * An unseeded user answers 404, so a load run against users that were never seeded fails loudly.
 */
import { DurableObject } from "cloudflare:workers";

interface ReadFloorEnv {
  USER_MEMORY: DurableObjectNamespace<UserMemory>;
  READ_FLOOR_DOC_BYTES?: string;
}

export class UserMemory extends DurableObject<ReadFloorEnv> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: ReadFloorEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS context (id INTEGER PRIMARY KEY CHECK (id = 1), doc TEXT NOT NULL)");
  }

  seed(doc: string): void {
    this.sql.exec("INSERT INTO context (id, doc) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET doc = excluded.doc", doc);
  }

  read(): string | null {
    const rows = this.sql.exec<{ doc: string }>("SELECT doc FROM context WHERE id = 1").toArray();
    return rows[0]?.doc ?? null;
  }
}

/** About `bytes` of JSON shaped like postcall's context answer. */
function documentFor(userId: string, bytes: number): string {
  const doc = { user_id: userId, dynamic_variables: { user_id: userId, call_count: 3, last_call_summary: "", previous_topics: "" } };
  const base = JSON.stringify(doc).length;
  const pad = Math.max(0, bytes - base);
  doc.dynamic_variables.last_call_summary = "s".repeat(pad >> 1);
  doc.dynamic_variables.previous_topics = "t".repeat(pad - (pad >> 1));
  return JSON.stringify(doc);
}

const CONTEXT = /^\/v1\/users\/([^/]+)\/context$/;

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/__seed" && request.method === "POST") {
      const users = (await request.json()) as string[];
      const bytes = Number(env.READ_FLOOR_DOC_BYTES ?? 1024);
      await Promise.all(users.map((u) => env.USER_MEMORY.get(env.USER_MEMORY.idFromName(`user:${u}`)).seed(documentFor(u, bytes))));
      return Response.json({ seeded: users.length, bytes: documentFor(users[0] ?? "", bytes).length });
    }
    const m = request.method === "GET" ? CONTEXT.exec(url.pathname) : null;
    if (m === null) return new Response("not found", { status: 404 });
    let userId: string;
    try {
      userId = decodeURIComponent(m[1]!);
    } catch {
      return new Response("bad user id", { status: 400 });
    }
    const doc = await env.USER_MEMORY.get(env.USER_MEMORY.idFromName(`user:${userId}`)).read();
    if (doc === null) return new Response("not seeded", { status: 404 });
    return new Response(doc, { headers: { "content-type": "application/json" } });
  },
} satisfies ExportedHandler<ReadFloorEnv>;
