/**
 * The bounds every object keeps (docs/cost-and-capacity.md): how much detail a memory holds, how
 * much one call or alarm run may do, so that no object grows or works without limit.
 */
export const LIMITS = {
  /** Conversations kept with title and summary (the rest live on in D1 and in the counters). */
  recentConversations: 50,
  /** Conversations rendered into previous_topics (before the character budget applies). */
  topicConversations: 20,
  facts: 200,
  /** Serialised size above which a fact value is not kept in memory (it stays in D1 and R2). */
  factValueChars: 8192,
  /** Delivery ids remembered for deduplication; ElevenLabs retries within about 41 minutes. */
  seenEvents: 10_000,
  /** DO SQLite refuses values over 2 MB: raw payloads are stored in parts. */
  blobPartBytes: 1 << 20,
  /** Outbox items delivered per alarm run. */
  flushBatch: 25,
  /**
   * Conversations erased per Durable Object call (DELETE and retention): eraseBatch x eraseBatchesPerCall
   * = 200. Each can cost up to four subrequests (an R2 list, R2 heads of recorded keys, a call to the
   * conversation's own object for its audio link), so one invocation stays under the platform's
   * 1,000-subrequest limit.
   */
  eraseBatch: 100,
  eraseBatchesPerCall: 2,
  /** Phone links undone per Durable Object call during an erasure (each is one call to another object). */
  unlinkBatch: 50,
  /** Recall index (src/objects/user-memory/recall-index.ts): turns indexed per conversation (the first ones). */
  recallTurnsPerConversation: 200,
  /** Characters of one turn, title or summary kept in the index. */
  recallDocChars: 2000,
  /** Bytes of indexed text per memory; past it the oldest conversations leave the index. */
  recallBytesPerMemory: 8 * 1024 * 1024,
  /** Old values kept per fact, and in all (fact_history). */
  factHistoryPerFact: 20,
  factHistoryTotal: 2000,
  /** Agent scopes erased per Durable Object call (each is up to a few calls to another object). */
  scopeBatch: 20,
  /** Conversations read from D1 per backfill batch, and batches per alarm run. */
  backfillBatch: 20,
  backfillBatchesPerRun: 2,
} as const;
