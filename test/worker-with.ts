/**
 * The Worker with settings other than the test bindings' (MEMORY_SCOPE, CONTEXT_CACHE_SECONDS, ...),
 * called through its own fetch: what the Worker decides reads them; objects keep the bindings' values
 * unless a test gives them others (test/faults.ts `injectBindings`).
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import worker from "../src/index";
import { BASE, signatureHeader } from "./helpers";

export async function sendWith(patch: Record<string, string>, req: Request): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await worker.fetch(req as Request<unknown, IncomingRequestCfProperties>, { ...env, ...patch } as typeof env, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

/** A signed post-call webhook through the Worker with `patch`; asserts its 200. */
export async function webhookWith(patch: Record<string, string>, event: object): Promise<void> {
  const body = JSON.stringify(event);
  const res = await sendWith(
    patch,
    new Request(`${BASE}/webhooks/elevenlabs`, { method: "POST", headers: { "Content-Type": "application/json", "ElevenLabs-Signature": await signatureHeader(body) }, body }),
  );
  expect(res.status, await res.clone().text()).toBe(200);
}
