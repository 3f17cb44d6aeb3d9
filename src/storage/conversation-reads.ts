/**
 * Reading conversations back from D1 (docs/storage.md): one conversation with its decoded
 * transcript, a user's conversations, the unattributed ones, call failures. The writes are in
 * conversations.ts, which re-exports these. Each read goes to the shards that hold its rows
 * (src/storage/shards.ts): a user's list to theirs, a lookup by id to its home and then its owner's,
 * the unattributed list to all of them, merged by the same keyset.
 */
import { shardEntry } from "./placement";
import { byHome, firstOf, homeShards, mergePages, onEveryShard, ownerShards, userPage, type ShardEnv } from "./shards";
import { decodeTranscript, type StoredTurn, type StoredValue } from "./transcript-codec";

/** The columns of a conversation row as the API reads them. */
export interface ConversationRow {
  conversation_id: string;
  user_id: string | null;
  user_id_source: string | null;
  agent_id: string;
  agent_name: string | null;
  status: string | null;
  started_at: number;
  duration_secs: number;
  title: string | null;
  summary: string | null;
  call_successful: string | null;
  termination_reason: string | null;
  main_language: string | null;
  phone_number: string | null;
  phone_direction: string | null;
  phone_provider: string | null;
  turn_count: number;
  /** JSON text: evaluation results and data collection (null when it was too large to keep here). */
  analysis: string | null;
  event_timestamp: number | null;
  received_at: number;
  /** How the owner was vouched for: token, telephony, operator, claimed (null: no owner, or stored before migration 0005). */
  vouched_by: string | null;
  claimed_user_id: string | null;
  unverified_reason: string | null;
}

export interface StoredConversation {
  row: ConversationRow;
  transcript: StoredTurn[];
  audio: { bytes: number; sha256: string; stored_at: number } | null;
}

/** JSON text as a value, or null when absent or unreadable (stored JSON columns). */
export function parseStoredJson(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** A transcript's turns as the API and forwarded events show them. */
export function turnsView(transcript: StoredTurn[]) {
  return transcript.map((t) => ({
    index: t.index,
    role: t.role,
    message: t.message,
    time_in_call_secs: t.time_in_call_secs,
    tools: parseStoredJson(t.tools),
    feedback: t.feedback,
  }));
}

const ROW_COLUMNS = `conversation_id, user_id, user_id_source, agent_id, agent_name, status, started_at, duration_secs, title,
  summary, call_successful, termination_reason, main_language, phone_number, phone_direction, phone_provider,
  turn_count, analysis, event_timestamp, received_at, vouched_by, claimed_user_id, unverified_reason`;

/**
 * One conversation with its transcript and audio row, or null when D1 has none: its home shard names
 * the owner and holds the audio row (and the row itself when no one owns it, or the owner's shard
 * is the same: then one batch answers); otherwise the owner's shard is asked for the row.
 */
export async function readConversation(
  env: ShardEnv,
  conversationId: string,
  opts: { transcript: boolean } = { transcript: true },
): Promise<StoredConversation | null> {
  // Without the transcript (a forwarded event that only links to it) neither the blob is read nor decoded.
  const select = (db: D1Database) =>
    db.prepare(`SELECT ${ROW_COLUMNS}${opts.transcript ? ", transcript" : ""} FROM conversations WHERE conversation_id = ?`).bind(conversationId);
  // Each candidate home (usually one) in one batch: the entry, the row (there when unowned or the owner's shard is the same), the audio.
  const homes = await homeShards(env, conversationId);
  const answers = await Promise.all(
    homes.map(async (home) => {
      const [entry, conv, audio] = await home.batch<unknown>([
        home.prepare("SELECT user_id FROM conversation_shards WHERE conversation_id = ?").bind(conversationId),
        select(home),
        home.prepare("SELECT bytes, sha256, stored_at FROM audio WHERE conversation_id = ?").bind(conversationId),
      ]);
      return { home, entry: entry!.results[0] as { user_id: string | null } | undefined, conv: conv!.results[0], audio: audio!.results[0] };
    }),
  );
  const owner = answers.find((a) => a.entry !== undefined)?.entry;
  if (owner === undefined) return null;
  const dbs = await ownerShards(env, conversationId, owner.user_id);
  const asked = answers.filter((a) => dbs.includes(a.home)).find((a) => a.conv !== undefined)?.conv;
  const rest = dbs.filter((db) => !homes.includes(db));
  const found = (asked ?? (await firstOf(rest, (db) => select(db).first()))) as (ConversationRow & { transcript: StoredValue | null }) | null | undefined;
  if (!found) return null;
  const audio = answers.find((a) => a.audio !== undefined)?.audio;
  const { transcript, ...row } = found;
  return {
    row,
    // Throws TranscriptDecodeError (a 500) for a value it cannot read: never a silently empty transcript.
    transcript: opts.transcript ? await decodeTranscript(transcript) : [],
    audio: (audio as StoredConversation["audio"] | undefined) ?? null,
  };
}

/**
 * Audio rows live in each conversation's home shard: `fill` is called with those of `ids` whose home
 * is not `read` (the shard whose join already answered for the rest), one query per other shard.
 */
export async function audioRowsElsewhere<T>(
  env: ShardEnv,
  read: D1Database,
  ids: string[],
  columns: string,
): Promise<Map<string, T>> {
  const out = new Map<string, T>();
  const groups = (await byHome(env, ids)).filter((g) => g.db !== read);
  const answers = await Promise.all(
    groups.map((g) =>
      g.db
        .prepare(`SELECT conversation_id, ${columns} FROM audio WHERE conversation_id IN (${g.ids.map(() => "?").join(", ")})`)
        .bind(...g.ids)
        .all<T & { conversation_id: string }>(),
    ),
  );
  for (const { results } of answers) for (const r of results) out.set(r.conversation_id, r);
  return out;
}

/** A row of a user's conversation list: the summary columns and whether it has audio. */
export type ConversationSummary = Pick<
  ConversationRow,
  | "conversation_id"
  | "agent_id"
  | "agent_name"
  | "status"
  | "started_at"
  | "duration_secs"
  | "title"
  | "summary"
  | "call_successful"
  | "user_id_source"
  | "phone_number"
  | "phone_direction"
  | "turn_count"
> & { has_audio: number };

const SUMMARY_COLUMNS = `c.conversation_id, c.agent_id, c.agent_name, c.status, c.started_at, c.duration_secs, c.title, c.summary,
  c.call_successful, c.user_id_source, c.phone_number, c.phone_direction, c.turn_count,
  (a.conversation_id IS NOT NULL) AS has_audio`;

/**
 * A page of a user's conversations, newest first (index conversations_by_user), strictly after the
 * keyset position `after`. Returns up to `limit` rows.
 */
export async function listConversationsOfUser(
  env: ShardEnv,
  userId: string,
  page: { limit: number; after: { startedAt: number; conversationId: string } | null },
): Promise<ConversationSummary[]> {
  return userPage(env, userId, "desc", page.limit, (db) => userPageOf(env, db, userId, page));
}

async function userPageOf(
  env: ShardEnv,
  db: D1Database,
  userId: string,
  page: { limit: number; after: { startedAt: number; conversationId: string } | null },
): Promise<ConversationSummary[]> {
  const { limit, after } = page;
  const stmt =
    after === null
      ? db.prepare(
          `SELECT ${SUMMARY_COLUMNS} FROM conversations c LEFT JOIN audio a ON a.conversation_id = c.conversation_id
           WHERE c.user_id = ? ORDER BY c.started_at DESC, c.conversation_id DESC LIMIT ?`,
        ).bind(userId, limit)
      : db.prepare(
          `SELECT ${SUMMARY_COLUMNS} FROM conversations c LEFT JOIN audio a ON a.conversation_id = c.conversation_id
           WHERE c.user_id = ? AND (c.started_at < ? OR (c.started_at = ? AND c.conversation_id < ?))
           ORDER BY c.started_at DESC, c.conversation_id DESC LIMIT ?`,
        ).bind(userId, after.startedAt, after.startedAt, after.conversationId, limit);
  const { results } = await stmt.all<ConversationSummary>();
  // The join saw the audio of conversations whose home is this shard; the others' is asked for.
  const elsewhere = await audioRowsElsewhere(env, db, results.filter((r) => r.has_audio !== 1).map((r) => r.conversation_id), "1 AS found");
  return results.map((r) => (elsewhere.has(r.conversation_id) ? { ...r, has_audio: 1 } : r));
}

/** Who D1 says owns a conversation (null: no one), or undefined when D1 has no row for it (its home shard's entry). */
export async function conversationOwner(env: ShardEnv, conversationId: string): Promise<string | null | undefined> {
  const entry = await shardEntry(env, conversationId);
  return entry === null ? undefined : entry.user_id;
}


export type UnattributedSummary = ConversationSummary & { received_at: number; claimed_user_id: string | null; unverified_reason: string | null };

/**
 * Conversations no one owns (unverified claims and conversations that named no one), newest
 * received first, strictly after the keyset position `after` (index conversations_unattributed).
 */
export async function listUnattributed(
  env: ShardEnv,
  page: { limit: number; after: { receivedAt: number; conversationId: string } | null },
): Promise<UnattributedSummary[]> {
  // An unowned conversation lives in its home shard, with its audio row: each shard's join is whole.
  const pages = await onEveryShard(env, (db) => unattributedOf(db, page));
  const first = (a: UnattributedSummary, b: UnattributedSummary) =>
    a.received_at > b.received_at || (a.received_at === b.received_at && a.conversation_id > b.conversation_id);
  return mergePages(pages, first, page.limit);
}

async function unattributedOf(
  db: D1Database,
  page: { limit: number; after: { receivedAt: number; conversationId: string } | null },
): Promise<UnattributedSummary[]> {
  const cols = `${SUMMARY_COLUMNS}, c.received_at, c.claimed_user_id, c.unverified_reason`;
  // INDEXED BY: left alone, SQLite reads `user_id IS NULL` through conversations_by_user and sorts every
  // unowned row (a temp B-tree that grows with them); the partial index is already in page order.
  const from = "FROM conversations c INDEXED BY conversations_unattributed LEFT JOIN audio a ON a.conversation_id = c.conversation_id WHERE c.user_id IS NULL";
  const stmt =
    page.after === null
      ? db.prepare(`SELECT ${cols} ${from} ORDER BY c.received_at DESC, c.conversation_id DESC LIMIT ?`).bind(page.limit)
      : db
          .prepare(
            `SELECT ${cols} ${from} AND (c.received_at < ? OR (c.received_at = ? AND c.conversation_id < ?))
             ORDER BY c.received_at DESC, c.conversation_id DESC LIMIT ?`,
          )
          .bind(page.after.receivedAt, page.after.receivedAt, page.after.conversationId, page.limit);
  return (await stmt.all<UnattributedSummary>()).results;
}

/** A `call_failures` row as D1 returns it (the export and forwarding read it). */
export interface CallFailureRow {
  conversation_id: string;
  agent_id: string;
  failure_reason: string;
  provider: string | null;
  from_number: string | null;
  to_number: string | null;
  sip_status_code: number | null;
  call_sid: string | null;
  metadata: string | null;
  event_timestamp: number | null;
  received_at: number;
}

/** A call failure as the API shows it (an export's `call_failure` record, a forwarded `call.failed`'s data). */
export function callFailureView(f: CallFailureRow) {
  return {
    conversation_id: f.conversation_id,
    agent_id: f.agent_id,
    failure_reason: f.failure_reason,
    provider: f.provider,
    from_number: f.from_number,
    to_number: f.to_number,
    sip_status_code: f.sip_status_code,
    call_sid: f.call_sid,
    metadata: parseStoredJson(f.metadata),
  };
}
