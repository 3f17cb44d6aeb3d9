/**
 * postcall: per-user memory for ElevenLabs voice agents. This file only wires routes to handlers.
 */
import { Router, type IRequest } from "itty-router";
import { audioLinkAuthorises, createAudioLink, getAudio } from "./api/audio";
import { getContext } from "./api/context";
import { getHealthDetails } from "./api/health";
import { getConversation, listConversations } from "./api/conversations";
import { attributeConversation, listConversationsOwnedByNoOne } from "./api/attribution";
import { listUsers } from "./api/directory";
import { exportUser } from "./api/export";
import { recallTool } from "./api/recall";
import { backfillAudio, getImport, listImports, startImport } from "./api/imports";
import { searchTranscripts } from "./api/search";
import { requireApiKey } from "./lib/http/auth";
import { idParam, optionalIdQuery } from "./lib/http/params";
import { deletePhoneLink, deleteUser, getInitiationPreview, getMemory, putPhoneLink } from "./api/users";
import type { Env } from "./lib/env";
import { ApiError, errorResponse, json, notFound } from "./lib/errors";
import { handlePostCall } from "./webhooks/handler";
import { handleInitiation } from "./webhooks/initiation";
import { pruneHealth, sweepRetention } from "./cron/sweep";
import { listForwardFailures, retryForwardFailure } from "./api/forwarding";
import { getErasure, listErasures } from "./api/erasures";
import { handleQueue } from "./forwarding/consumer";

// One Durable Object class per kind of object (docs/architecture.md).
export { UserMemory } from "./objects/user-memory/user-memory";
export { ConversationLedger } from "./objects/conversation-ledger/conversation-ledger";
export { HealthStats } from "./objects/health-stats/health-stats";
export { HistoryImport } from "./objects/history-import/history-import";

type Args = [Env, ExecutionContext];

const router = Router<IRequest, Args>({ catch: errorResponse });

const userId = (req: IRequest) => idParam(req.params["userId"], "user_id");
/** `?agent_id=`: which agent's memory, when MEMORY_SCOPE="agent" (src/memory/objects.ts). */
const agentIdQuery = (req: IRequest) => optionalIdQuery(new URL(req.url), "agent_id");

router
  .get("/health", () => json({ status: "ok" }))
  .get("/", (req) => Response.redirect(new URL("/console/", req.url).toString(), 302))
  .post("/webhooks/elevenlabs", (req, env, ctx) => handlePostCall(req, env, ctx))
  .post("/webhooks/elevenlabs/initiation", (req, env, ctx) => handleInitiation(req, env, ctx))
  // An ElevenLabs server tool: AGENT_API_KEY (or API_KEY); after the key, always a 200 (src/api/recall.ts).
  .post("/tools/recall", async (req, env) => {
    await requireApiKey(req, env, "agent");
    return recallTool(req, env);
  })
  .all("/v1/*", async (req, env) => {
    // A signed audio link (src/lib/audio-link.ts) stands in for the key on that one GET.
    if (await audioLinkAuthorises(req, env)) return;
    await requireApiKey(req, env, agentMayCall(req) ? "agent" : "full");
  })
  .get("/v1/users", (req, env) => listUsers(req, env))
  .get("/v1/search", (req, env) => searchTranscripts(req, env))
  .get("/v1/health/details", (_req, env) => getHealthDetails(env))
  .get("/v1/users/:userId/context", (req, env) => getContext(env, userId(req), agentIdQuery(req)))
  .get("/v1/users/:userId/memory", (req, env) => getMemory(env, userId(req), agentIdQuery(req)))
  .get("/v1/users/:userId/conversations", (req, env) => listConversations(env, userId(req), new URL(req.url)))
  .get("/v1/users/:userId/export", (req, env) => exportUser(req, env, userId(req)))
  .put("/v1/users/:userId/phones/:phoneNumber", (req, env) => putPhoneLink(env, userId(req), req.params["phoneNumber"]))
  .delete("/v1/users/:userId/phones/:phoneNumber", (req, env) => deletePhoneLink(env, userId(req), req.params["phoneNumber"]))
  .delete("/v1/users/:userId", (req, env) => deleteUser(env, userId(req)))
  .get("/v1/phones/:phoneNumber/initiation", (req, env) => getInitiationPreview(env, req.params["phoneNumber"], agentIdQuery(req)))
  .get("/v1/conversations/:conversationId/audio", (req, env) =>
    getAudio(req, env, idParam(req.params["conversationId"], "conversation_id")),
  )
  .post("/v1/conversations/:conversationId/audio/link", (req, env) =>
    createAudioLink(env, idParam(req.params["conversationId"], "conversation_id")),
  )
  .post("/v1/conversations/:conversationId/audio/backfill", (req, env) =>
    backfillAudio(env, idParam(req.params["conversationId"], "conversation_id")),
  )
  .post("/v1/imports", (req, env) => startImport(req, env))
  .get("/v1/imports", (_req, env) => listImports(env))
  .get("/v1/imports/:importId", (req, env) => getImport(env, idParam(req.params["importId"], "import_id")))
  .get("/v1/conversations/:conversationId", (req, env) => getConversation(env, idParam(req.params["conversationId"], "conversation_id")))
  .get("/v1/erasures", (req, env) => listErasures(env, new URL(req.url)))
  .get("/v1/erasures/:erasureId", (req, env) => getErasure(env, idParam(req.params["erasureId"], "erasure_id")))
  .get("/v1/forwarding/failures", (req, env) => listForwardFailures(env, new URL(req.url)))
  .post("/v1/forwarding/failures/:failureId/retry", (req, env) => retryForwardFailure(env, idParam(req.params["failureId"], "failure_id")))
  .get("/v1/conversations", (req, env) => listConversationsOwnedByNoOne(env, new URL(req.url)))
  .post("/v1/conversations/:conversationId/attribute", (req, env) =>
    attributeConversation(req, env, idParam(req.params["conversationId"], "conversation_id")),
  )
  .all("*", (req) => {
    throw KNOWN_PATHS.some((p) => p.test(new URL(req.url).pathname))
      ? new ApiError(405, "method_not_allowed", `${req.method} is not supported on this path.`)
      : notFound("not_found", "No such route.");
  });

/** The `/v1` routes ElevenLabs itself calls, where AGENT_API_KEY is accepted (src/lib/http/auth.ts). */
const AGENT_ROUTES: [method: string, path: RegExp][] = [["GET", /^\/v1\/users\/[^/]+\/context$/]];

function agentMayCall(req: IRequest): boolean {
  const path = new URL(req.url).pathname;
  return AGENT_ROUTES.some(([method, re]) => method === req.method && re.test(path));
}

const KNOWN_PATHS = [
  /^\/$/,
  /^\/health$/,
  /^\/v1\/users$/,
  /^\/v1\/search$/,
  /^\/v1\/health\/details$/,
  /^\/webhooks\/elevenlabs$/,
  /^\/webhooks\/elevenlabs\/initiation$/,
  /^\/tools\/recall$/,
  /^\/v1\/users\/[^/]+$/,
  /^\/v1\/users\/[^/]+\/(context|memory|conversations|export)$/,
  /^\/v1\/users\/[^/]+\/phones\/[^/]+$/,
  /^\/v1\/phones\/[^/]+\/initiation$/,
  /^\/v1\/conversations\/[^/]+$/,
  /^\/v1\/conversations\/[^/]+\/audio$/,
  /^\/v1\/forwarding\/failures$/,
  /^\/v1\/forwarding\/failures\/[^/]+\/retry$/,
  /^\/v1\/conversations$/,
  /^\/v1\/conversations\/[^/]+\/attribute$/,
  /^\/v1\/conversations\/[^/]+\/audio\/(backfill|link)$/,
  /^\/v1\/imports(\/[^/]+)?$/,
  /^\/v1\/erasures(\/[^/]+)?$/,
];

export default {
  fetch: (request, env, ctx) => router.fetch(request, env, ctx),
  scheduled: async (_controller, env, _ctx) => {
    const report = await sweepRetention(env);
    console.log(`retention sweep: ${report.users} users, ${JSON.stringify(report.counts)}`);
    const pruned = await pruneHealth(env);
    // Said only when there was something to do: a daily "0" is noise in the operator's logs.
    if (pruned > 0) console.log(`health upkeep: ${pruned} conversations no longer awaited for audio`);
  },
  queue: (batch, env, _ctx) => handleQueue(batch, env),
} satisfies ExportedHandler<Env>;
