/**
 * History imports and audio backfill on demand: postcall asking ElevenLabs' API for what it already
 * holds (src/objects/history-import/imports.ts, src/objects/conversation-ledger/audio-backfill.ts). Both need ELEVENLABS_API_KEY: without
 * it they answer 500 `misconfigured` naming it, and nothing is fetched.
 */
import type { Env } from "../lib/env";
import { ApiError, badRequest, json, notFound } from "../lib/errors";
import { isValidId } from "../lib/ids";
import { iso } from "../lib/time";
import { importObject, ledgerObject } from "../memory/objects";
import { apiKeyOf, requireApi } from "../elevenlabs/api";
import { listImportRows } from "../storage/imports";

const MAX_BODY_CHARS = 4096;

async function jsonBody(req: Request): Promise<Record<string, unknown>> {
  const text = await req.text();
  if (text.length > MAX_BODY_CHARS) throw badRequest("invalid_body", "The body must be a small JSON object.");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw badRequest("invalid_json", "The body is not valid JSON.");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw badRequest("invalid_body", "The body must be a JSON object.");
  return parsed as Record<string, unknown>;
}

/** POST /v1/imports `{"agent_id", "since"?: ISO time, "include_audio"?: boolean}` -> 202 `{"import_id"}`. */
export async function startImport(req: Request, env: Env): Promise<Response> {
  requireApi(env);
  const body = await jsonBody(req);
  const agentId = body["agent_id"];
  if (typeof agentId !== "string" || !isValidId(agentId)) throw badRequest("invalid_agent_id", "`agent_id` must be a string of 1 to 256 characters.");
  let since: number | null = null;
  if (body["since"] !== undefined && body["since"] !== null) {
    const raw = body["since"];
    const ms = typeof raw === "string" && /^\d{4}-\d{2}-\d{2}/.test(raw) ? Date.parse(raw) : NaN;
    if (Number.isNaN(ms)) throw badRequest("invalid_since", "`since` must be an ISO-8601 time such as 2026-01-01T00:00:00Z.");
    since = Math.floor(ms / 1000);
  }
  const includeAudio = body["include_audio"] ?? false;
  if (typeof includeAudio !== "boolean") throw badRequest("invalid_include_audio", "`include_audio` must be true or false.");
  const importId = `imp_${crypto.randomUUID()}`;
  const status = await importObject(env, importId).startImport({ importId, agentId, since, includeAudio });
  return json({ import_id: importId, status: status.status, status_url: `/v1/imports/${importId}` }, 202, { Location: `/v1/imports/${importId}` });
}

/** GET /v1/imports/:id: the import's progress, from its own object. */
export async function getImport(env: Env, importId: string): Promise<Response> {
  if (!/^imp_[0-9a-f-]{36}$/.test(importId)) throw notFound("import_not_found", "No import has this id.");
  const status = await importObject(env, importId).importStatus();
  if (status === null) throw notFound("import_not_found", "No import has this id.");
  return json(status);
}

/** GET /v1/imports: the newest imports, running and finished (the console's list). */
export async function listImports(env: Env): Promise<Response> {
  const rows = await listImportRows(env.DB, 50);
  return json({
    imports: rows.map((r) => ({
      import_id: r.import_id,
      agent_id: r.agent_id,
      status: r.status,
      include_audio: r.include_audio === 1,
      since: iso(r.since),
      pages: r.pages,
      seen: r.seen,
      imported: r.imported,
      skipped: r.skipped,
      failed: r.failed,
      created_at: iso(r.created_at),
      updated_at: iso(r.updated_at),
      finished_at: iso(r.finished_at),
    })),
    // Without it no import can fetch anything (nor can a missing recording be fetched): the console says so.
    elevenlabs_api_key_set: apiKeyOf(env) !== null,
  });
}

/** POST /v1/conversations/:id/audio/backfill: fetch the audio from ElevenLabs now, unless postcall has it. */
export async function backfillAudio(env: Env, conversationId: string): Promise<Response> {
  requireApi(env);
  const outcome = await ledgerObject(env, conversationId).backfillAudio();
  if (outcome.status === "dropped") throw new ApiError(410, "conversation_erased", "This conversation was erased: its audio is not fetched back.");
  if (outcome.status === "unavailable") throw notFound("audio_not_available", "ElevenLabs has no audio for this conversation.");
  if (outcome.status === "failed") throw new ApiError(502, "elevenlabs_unavailable", `Nothing was stored: ${outcome.reason}`);
  if (outcome.status === "not_configured") requireApi({ ...env, ELEVENLABS_API_KEY: undefined }); // the object's env had no key
  return json({ conversation_id: conversationId, ...outcome }, outcome.status === "stored" ? 201 : 200);
}
