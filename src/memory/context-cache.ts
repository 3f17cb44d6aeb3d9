/**
 * An optional per-isolate cache of users' memory snapshots for the context endpoint
 * (CONTEXT_CACHE_SECONDS, off by default). Pure: no bindings, the clock is passed in.
 *
 * Why it is off by default: a Worker runs in many isolates on many machines, and only the isolate
 * that ingests a webhook (or deletes a user) can drop its own copy. Every other isolate keeps
 * serving what it cached until the entry expires, so with the cache on a context read may miss a
 * conversation stored up to CONTEXT_CACHE_SECONDS ago, or show a deleted user's memory for as long.
 * Without it every read costs a round trip to the user's Durable Object (bench/RESULTS.md).
 *
 * Snapshots are cached, not rendered variables, so time-dependent values (days_since_last_call) are
 * computed at read time. Entries are bounded by count, least recently stored evicted first. Keys are
 * the memory's object name (a `MemoryName`), so one memory is one entry whatever MEMORY_SCOPE says.
 */
import { userIdOfName, userObjectName, type MemoryName } from "../records/object-names";
import type { MemorySnapshot } from "./variables";

export class ContextCache {
  private readonly entries = new Map<MemoryName, { snapshot: MemorySnapshot; expiresAt: number }>();

  constructor(private readonly maxEntries: number) {}

  get(key: MemoryName, nowMs: number): MemorySnapshot | null {
    const e = this.entries.get(key);
    if (!e) return null;
    if (nowMs >= e.expiresAt) {
      this.entries.delete(key);
      return null;
    }
    return e.snapshot;
  }

  set(key: MemoryName, snapshot: MemorySnapshot, nowMs: number, ttlSeconds: number): void {
    if (ttlSeconds <= 0) return;
    this.entries.delete(key);
    this.entries.set(key, { snapshot, expiresAt: nowMs + ttlSeconds * 1000 });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  /** Drops a memory's entry: called by whatever changes it in this isolate. */
  forget(key: MemoryName): void {
    this.entries.delete(key);
  }

  /** Drops a user's entries in every agent scope (keys `agent:<id>:user:<userId>`, src/memory/objects.ts): erasure. */
  forgetEveryScope(userId: string): void {
    this.entries.delete(userObjectName(userId));
    for (const key of [...this.entries.keys()]) if (key.startsWith("agent:") && userIdOfName(key) === userId) this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}

/** At most this many users' snapshots per isolate (a snapshot is a few KB at most: LIMITS bound it). */
export const CONTEXT_CACHE_MAX_ENTRIES = 1000;

export const contextCache = new ContextCache(CONTEXT_CACHE_MAX_ENTRIES);
