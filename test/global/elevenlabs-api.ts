/**
 * vitest globalSetup: a real HTTP server on 127.0.0.1 that plays ElevenLabs' API for the Worker under
 * test (no mocked fetch). Its port is chosen in vitest.config.ts (the Worker's ELEVENLABS_API_BASE is
 * fixed before this runs) and reaches here as POSTCALL_FAKE_API_PORT; tests read its base URL with
 * `inject("elevenLabsApiBase")`.
 *
 * It serves test/fake-api/data.ts: cursor pages of an agent's conversations, single conversations,
 * and MP3 bytes. And it misbehaves on purpose, once each: page 2 of agent_bulk answers 429 with
 * `retry-after: 1`, conversation bulk-c7 answers 500, the audio of any `die-` id dies halfway; an
 * agent id `<agent>~429` or a conversation id `<id>~500` does the same for a test of its own. A key
 * other than FAKE_API_KEY gets a 401 whose body quotes the key (as careless APIs do), and so does
 * agent_forbidden with the right key: the Worker must not repeat it anywhere.
 * `GET /__stats` reports what it saw.
 *
 * Deleting: `DELETE /v1/convai/conversations/{id}` answers 200 (`{}`) the first time for any id and 404
 * after (a deleted conversation is gone, also for GET), unless a test scripted failures for that id
 * first: `POST /__delete-script {"conversation_id", "statuses": [429, 500, ...]}` makes its next
 * DELETEs answer those statuses in turn (a 429 with `retry-after: 1`). `GET /__deletes?conversation_id=`
 * lists the status of every DELETE the id received, in order.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { TestProject } from "vitest/node";
import { AGENTS, FAKE_API_KEY, audioOf, conversationIdOf, conversationOf, summaryOf } from "../fake-api/data";


const stats = { requests: 0, byPath: {} as Record<string, number>, rateLimited: 0, errors500: 0, died: 0, wrongKey: 0 };
const onceDone = new Set<string>();
/** Conversation ids deleted (then 404), the statuses each DELETE got, and failures scripted per id. */
const deleted = new Set<string>();
const deletes = new Map<string, number[]>();
const deleteScript = new Map<string, number[]>();

function handleDelete(id: string, res: ServerResponse): void {
  const statuses = deletes.get(id) ?? [];
  deletes.set(id, statuses);
  const scripted = deleteScript.get(id)?.shift();
  if (scripted !== undefined) {
    statuses.push(scripted);
    return send(res, scripted, { detail: scripted === 429 ? "rate limited" : "internal error" }, scripted === 429 ? { "retry-after": "1" } : {});
  }
  if (deleted.has(id)) {
    statuses.push(404);
    return send(res, 404, { detail: { status: "conversation_not_found", message: "Conversation not found" } });
  }
  deleted.add(id);
  statuses.push(200);
  send(res, 200, {});
}

async function control(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
  if (url.pathname === "/__deletes") {
    send(res, 200, { statuses: deletes.get(url.searchParams.get("conversation_id") ?? "") ?? [] });
    return true;
  }
  if (url.pathname === "/__delete-script" && req.method === "POST") {
    let text = "";
    for await (const chunk of req) text += String(chunk);
    const body = JSON.parse(text) as { conversation_id: string; statuses: number[] };
    deleteScript.set(body.conversation_id, [...body.statuses]);
    send(res, 200, { ok: true });
    return true;
  }
  return false;
}

function once(tag: string): boolean {
  if (onceDone.has(tag)) return false;
  onceDone.add(tag);
  return true;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? "/", "http://127.0.0.1");
  const path = url.pathname;
  if (path.startsWith("/__") && path !== "/__stats") {
    void control(req, res, url).then((done) => done || send(res, 404, { detail: "no such control" }));
    return;
  }
  stats.requests++;
  stats.byPath[path] = (stats.byPath[path] ?? 0) + 1;
  if (path === "/__stats") return send(res, 200, stats);
  const key = req.headers["xi-api-key"];
  if (key !== FAKE_API_KEY) {
    stats.wrongKey++;
    return send(res, 401, { detail: { status: "invalid_api_key", message: `Invalid API key: ${String(key)}` } });
  }
  if (path === "/v1/convai/conversations") {
    const asked = url.searchParams.get("agent_id") ?? "";
    // `<agent>~429`: that agent's pages, after one 429 (for tests that must meet it themselves).
    const agentId = asked.replace(/~429$/, "");
    if (asked !== agentId && once(`429:${asked}`)) {
      stats.rateLimited++;
      return send(res, 429, { detail: "rate limited" }, { "retry-after": "1" });
    }
    if (agentId === "agent_forbidden") {
      return send(res, 403, { detail: { status: "forbidden", message: `key ${key} may not read agent_forbidden` } });
    }
    const agent = AGENTS[agentId];
    const pageSize = Math.min(100, Number(url.searchParams.get("page_size") ?? 30));
    const offset = Number(url.searchParams.get("cursor") ?? 0);
    if (agentId === "agent_bulk" && offset > 0 && once("429")) {
      stats.rateLimited++;
      return send(res, 429, { detail: "rate limited" }, { "retry-after": "1" });
    }
    const count = agent?.count ?? 0;
    const ids: string[] = [];
    for (let j = offset; j < Math.min(count, offset + pageSize); j++) ids.push(conversationIdOf(agentId, j));
    const more = offset + pageSize < count;
    return send(res, 200, { conversations: ids.map(summaryOf), has_more: more, ...(more ? { next_cursor: String(offset + pageSize) } : {}) });
  }
  const audio = /^\/v1\/convai\/conversations\/([^/]+)\/audio$/.exec(path);
  if (audio) {
    const id = decodeURIComponent(audio[1]!);
    const bytes = audioOf(id);
    if (bytes === null) return send(res, 404, { detail: "no audio" });
    res.writeHead(200, { "content-type": "audio/mpeg" }); // chunked, no length, as a stream
    if (id.startsWith("die-") && once(`die:${id}`)) {
      stats.died++;
      res.write(Buffer.from(bytes.subarray(0, bytes.byteLength >> 1)), () => setTimeout(() => res.destroy(), 20));
      return;
    }
    writeInChunks(res, bytes);
    return;
  }
  const one = /^\/v1\/convai\/conversations\/([^/]+)$/.exec(path);
  if (one && req.method === "DELETE") return handleDelete(decodeURIComponent(one[1]!), res);
  if (one) {
    const asked = decodeURIComponent(one[1]!);
    if (deleted.has(asked)) return send(res, 404, { detail: "not found" });
    // `<id>~500`: that conversation, after one 500.
    const id = asked.replace(/~500$/, "");
    if ((id === "bulk-c7" || asked !== id) && once(`500:${asked}`)) {
      stats.errors500++;
      return send(res, 500, { detail: "internal error" });
    }
    const c = conversationOf(id);
    return c ? send(res, 200, c) : send(res, 404, { detail: "not found" });
  }
  send(res, 404, { detail: "no such route" });
}

/** 64 KiB at a time, waiting for the socket to drain: a 60 MB body never sits in this process's memory twice. */
function writeInChunks(res: ServerResponse, bytes: Uint8Array): void {
  let off = 0;
  const step = 64 * 1024;
  const pump = () => {
    while (off < bytes.byteLength) {
      const chunk = Buffer.from(bytes.buffer, bytes.byteOffset + off, Math.min(step, bytes.byteLength - off));
      off += chunk.byteLength;
      if (!res.write(chunk)) return res.once("drain", pump);
    }
    res.end();
  };
  pump();
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  return serveFakeApi(project, Number(process.env["POSTCALL_FAKE_API_PORT"]));
}

/** Starts the stand-in on `port` (a project of its own may need its own port: test/global/elevenlabs-api-forwarding.ts). */
export async function serveFakeApi(project: TestProject, port: number): Promise<() => Promise<void>> {
  const server = createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  project.provide("elevenLabsApiBase", `http://127.0.0.1:${port}`);
  return () => new Promise<void>((resolve) => server.close(() => resolve()));
}
