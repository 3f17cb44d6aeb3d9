/**
 * postcall: per-user memory for ElevenLabs voice agents. This file only wires routes to handlers.
 */
import { Router, type IRequest } from "itty-router";
import { getAudio } from "./api/audio";
import { getContext } from "./api/context";
import { requireApiKey } from "./api/auth";
import { idParam } from "./api/params";
import type { Env } from "./env";
import { ApiError, errorResponse, json, notFound } from "./errors";
import { handlePostCall } from "./webhooks/handler";

export { UserMemory } from "./memory/user-memory";

type Args = [Env, ExecutionContext];

const router = Router<IRequest, Args>({ catch: errorResponse });

router
  .get("/health", () => json({ status: "ok" }))
  .post("/webhooks/elevenlabs", (req, env, ctx) => handlePostCall(req, env, ctx))
  .all("/v1/*", async (req, env) => {
    await requireApiKey(req, env);
  })
  .get("/v1/users/:userId/context", (req, env) => getContext(env, idParam(req.params["userId"], "user_id")))
  .get("/v1/conversations/:conversationId/audio", (req, env) =>
    getAudio(req, env, idParam(req.params["conversationId"], "conversation_id")),
  )
  .all("*", (req) => {
    throw KNOWN_PATHS.some((p) => p.test(new URL(req.url).pathname))
      ? new ApiError(405, "method_not_allowed", `${req.method} is not supported on this path.`)
      : notFound("not_found", "No such route.");
  });

const KNOWN_PATHS = [
  /^\/health$/,
  /^\/webhooks\/elevenlabs$/,
  /^\/v1\/users\/[^/]+\/context$/,
  /^\/v1\/conversations\/[^/]+\/audio$/,
];

export default {
  fetch: (request, env, ctx) => router.fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;
