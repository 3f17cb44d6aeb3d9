/**
 * postcall: per-user memory for ElevenLabs voice agents. This file only wires routes to handlers.
 */
import { Router, type IRequest } from "itty-router";
import { getContext } from "./api/context";
import { listUsers } from "./api/directory";
import { searchTranscripts } from "./api/search";
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
  .get("/", (req) => Response.redirect(new URL("/console/", req.url).toString(), 302))
  .post("/webhooks/elevenlabs", (req, env) => handlePostCall(req, env))
  .all("/v1/*", async (req, env) => {
    await requireApiKey(req, env);
  })
  .get("/v1/users", (req, env) => listUsers(req, env))
  .get("/v1/search", (req, env) => searchTranscripts(req, env))
  .get("/v1/users/:userId/context", (req, env) => getContext(env, idParam(req.params["userId"], "user_id")))
  .all("*", (req) => {
    throw KNOWN_PATHS.some((p) => p.test(new URL(req.url).pathname))
      ? new ApiError(405, "method_not_allowed", `${req.method} is not supported on this path.`)
      : notFound("not_found", "No such route.");
  });

const KNOWN_PATHS = [/^\/$/, /^\/health$/, /^\/v1\/users$/, /^\/v1\/search$/, /^\/webhooks\/elevenlabs$/, /^\/v1\/users\/[^/]+\/context$/];

export default {
  fetch: (request, env, ctx) => router.fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;
