/**
 * The Queue consumers of forwarding (wrangler.toml `[[queues.consumers]]`, docs/forwarding.md):
 *
 * - `postcall-forward`: each message is one event for one destination. Messages of a batch are
 *   delivered in parallel (src/forwarding/deliver.ts); each is acknowledged, retried with its own delay,
 *   or handed to the dead-letter queue with its last status and error, on its own. The last allowed
 *   attempt dead-letters itself instead of letting the Queue do it, so that the reason is kept.
 * - `postcall-forward-dlq`: writes each dead letter to D1 `forward_failures`. It also receives what the
 *   Queue itself gave up on (a consumer that crashed every time): those carry no status.
 */
import { config } from "../lib/config";
import type { Env } from "../lib/env";
import { failureIdOf, isDeadLetter, isForwardMessage, type DeadLetter, type ForwardMessage } from "../records/forward-events";
import { removeFailure, storeFailure } from "../storage/forwarding";
import { attemptDelivery, FORWARD_MAX_RETRIES, MAX_RETRY_DELAY_SECONDS, type Outcome } from "./deliver";

/** The dead-letter queue's name (wrangler.toml); every other queue this Worker consumes is postcall-forward. */
export const DEAD_LETTER_QUEUE = "postcall-forward-dlq";

export async function handleQueue(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  if (batch.queue === DEAD_LETTER_QUEUE) await consumeDeadLetters(batch, env);
  else await consumeForwards(batch, env);
}

async function consumeForwards(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const cfg = config(env);
  await Promise.all(
    batch.messages.map(async (msg) => {
      if (!isForwardMessage(msg.body)) {
        console.error(`forwarding: dropped a message that is not a forward (${JSON.stringify(msg.body).slice(0, 200)})`);
        msg.ack();
        return;
      }
      const m = msg.body;
      let outcome: Outcome;
      try {
        outcome = await attemptDelivery(env, cfg, m, msg.attempts);
      } catch (err) {
        // Our side failed (D1 unreadable): not the destination's fault, retried like a 5xx.
        const error = `postcall could not build the event: ${err instanceof Error ? err.message : String(err)}`;
        outcome = { kind: "retry", status: null, error, delaySeconds: Math.min(MAX_RETRY_DELAY_SECONDS, 5 * 2 ** Math.min(msg.attempts, 10)), userId: null };
      }
      await settle(env, msg, m, outcome);
    }),
  );
}

async function settle(env: Env, msg: Message<unknown>, m: ForwardMessage, outcome: Outcome): Promise<void> {
  const tag = `${m.event.type} ${m.id} -> ${m.destination}`;
  if (outcome.kind === "delivered" || outcome.kind === "gone") {
    if (outcome.kind === "gone") console.log(`forwarding: ${tag} not sent: what it reports was erased meanwhile`);
    if (m.failureId) await removeFailure(env.DB, m.failureId).catch((err) => console.error(`forwarding: delivered ${tag}, dead letter not removed`, err));
    msg.ack();
    return;
  }
  if (outcome.kind === "retry" && msg.attempts <= FORWARD_MAX_RETRIES) {
    console.warn(`forwarding: ${tag} attempt ${msg.attempts} failed (${outcome.error}); retrying in ${outcome.delaySeconds} s`);
    msg.retry({ delaySeconds: outcome.delaySeconds });
    return;
  }
  const dead: DeadLetter = { v: 1, dead: true, message: m, status: outcome.status, error: outcome.error, attempts: msg.attempts, userId: outcome.userId, failedAt: Math.floor(Date.now() / 1000) };
  try {
    if (!env.FORWARD_DEAD_LETTERS) throw new Error("FORWARD_DEAD_LETTERS is not bound");
    await env.FORWARD_DEAD_LETTERS.send(dead, { contentType: "json" });
    console.error(`forwarding: ${tag} failed for good after ${msg.attempts} attempt(s): ${outcome.error}`);
    msg.ack();
  } catch (err) {
    console.error(`forwarding: ${tag} could not be dead-lettered; retrying`, err);
    msg.retry({ delaySeconds: 30 });
  }
}

async function consumeDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const msg of batch.messages) {
    let dead: DeadLetter;
    if (isDeadLetter(msg.body)) dead = msg.body;
    else if (isForwardMessage(msg.body)) {
      dead = {
        v: 1,
        dead: true,
        message: msg.body,
        status: null,
        error: "the Queue gave up after its retries (the consumer failed without an answer)",
        attempts: FORWARD_MAX_RETRIES + 1,
        userId: null,
        failedAt: Math.floor(Date.now() / 1000),
      };
    } else {
      console.error(`forwarding: dropped an unreadable dead letter (${JSON.stringify(msg.body).slice(0, 200)})`);
      msg.ack();
      continue;
    }
    try {
      await storeFailure(env.DB, await failureIdOf(dead.message), dead);
      msg.ack();
    } catch (err) {
      console.error(`forwarding: dead letter ${dead.message.id} -> ${dead.message.destination} not written to D1 yet; retrying`, err);
      msg.retry({ delaySeconds: Math.min(MAX_RETRY_DELAY_SECONDS, 30 * 2 ** Math.min(msg.attempts - 1, 10)) });
    }
  }
}
