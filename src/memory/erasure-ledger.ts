/**
 * The erasure ledger as the rest of the code asks it (src/storage/erasures.ts keeps it in D1): the
 * hashes of a user id or a conversation id under the ledger's keys, and whether a conversation was
 * ever erased. The webhook's hot path never comes here (its objects carry their own entry: the
 * erasure mark, src/objects/shared/tombstone.ts); an import, an attribution and the console do.
 */
import { config } from "../lib/config";
import type { Env } from "../lib/env";
import { ledgerHashes, type HashedKind } from "../records/erasure-hash";
import { conversationErased, ledgerKeys } from "../storage/erasures";

/** The id's hash under every key of the ledger, the one new entries use first. */
export async function hashesOf(env: Env, kind: HashedKind, id: string): Promise<string[]> {
  return ledgerHashes(await ledgerKeys(env.DB, config(env).erasureLedgerKeys), kind, id);
}

/** The hash a new entry is written under. */
export async function hashOf(env: Env, kind: HashedKind, id: string): Promise<string> {
  return (await hashesOf(env, kind, id))[0]!;
}

/** Whether an erasure removed this conversation (it is then never stored again, by any path). */
export async function wasErased(env: Env, conversationId: string): Promise<boolean> {
  return conversationErased(env.DB, await hashesOf(env, "conversation", conversationId));
}
