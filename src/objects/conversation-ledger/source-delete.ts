/**
 * An erased conversation deleted at ElevenLabs too (ERASE_AT_ELEVENLABS), as an outbox item of the
 * conversation's ledger: queued by the erasure (`forgetConversation({erased, atSource})`), delivered
 * by the ledger's alarm, retried with the outbox's backoff until it is done. The client retries a 429
 * after its `retry-after` and a 5xx with backoff before it gives up on one attempt.
 *
 *   2xx, 404           done (404: ElevenLabs has no such conversation, which is what an erasure wants)
 *   429, 5xx, network  still pending: the item throws, and the outbox tries again (1 s doubling to 10 min)
 *   401, 403, no key   still pending too: a key the operator can fix (the outbox reports it stuck meanwhile)
 *   any other 4xx      failed for good (a retry cannot help): recorded, not retried
 *
 * Each attempt's outcome is written to the D1 ledger (`erased_conversations`, by keyed hash: the id
 * never leaves this object), which is where GET /v1/erasures/:id counts done and failed.
 */
import type { Env } from "../../lib/env";
import { ElevenLabsApi, ElevenLabsApiError } from "../../elevenlabs/api";
import { hashesOf } from "../../memory/erasure-ledger";
import { saveSourceOutcome, type SourceOutcome } from "../../storage/erasures";

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Whether asking again later may succeed. */
const retryable = (status: number) => status === 401 || status === 403 || status === 408 || status === 429 || status >= 500;

async function record(env: Env, conversationId: string, outcome: SourceOutcome): Promise<void> {
  await saveSourceOutcome(env.DB, await hashesOf(env, "conversation", conversationId), outcome, nowSeconds());
}

export async function deleteAtSource(env: Env, conversationId: string): Promise<void> {
  const api = ElevenLabsApi.of(env);
  if (api === null) {
    await record(env, conversationId, { state: "pending", status: 0 });
    throw new Error("ELEVENLABS_API_KEY is not set: the deletion at ElevenLabs waits for it");
  }
  let answer: "deleted" | "not_found";
  try {
    answer = await api.deleteConversation(conversationId);
  } catch (err) {
    const status = err instanceof ElevenLabsApiError ? err.status : 0;
    if (err instanceof ElevenLabsApiError && !retryable(status)) {
      await record(env, conversationId, { state: "failed", status });
      return;
    }
    await record(env, conversationId, { state: "pending", status });
    throw err;
  }
  await record(env, conversationId, { state: "done", status: answer === "deleted" ? 200 : 404 });
}
