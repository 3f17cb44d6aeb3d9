/**
 * Facts (ElevenLabs' data collection results) and their history. The current value of each fact
 * lives in `facts` (the context serves it); when a later call collects a different value, the old
 * one moves to `fact_history` with the time range it was true (valid_from: the call that first
 * collected it; valid_to: the call that superseded it), as Zep's fact validity does, instead of being
 * overwritten silently. Latest wins by when the conversation happened, not by when its webhook
 * arrived: a late webhook of an older call with another value becomes history, not the current value.
 *
 * Every value, current or old, is also a document of the recall index (src/objects/user-memory/recall-index.ts),
 * so recall finds "dentist: Dr. Patel (until 2026-05-01)"; a document names the conversation that
 * collected its value first (a later call confirming the same value changes nothing there). Erasure wipes all of it with the object.
 * Writers run inside the caller's transaction.
 */
import type { MemoryRecord } from "../../records/payload";
import { forgetFactsNotIn, indexFacts, type FactDocument } from "./recall-index";
import { LIMITS } from "../shared/limits";

export type FactHistoryRow = {
  fact_id: string;
  value: string;
  conversation_id: string | null;
  valid_from: number;
  valid_to: number;
};

type CurrentFact = {
  value: string;
  conversation_id: string;
  collected_at: number;
  valid_from: number | null;
};

type Row = [id: string, value: string, conversationId: string, collectedAt: number, updatedAt: number, validFrom: number];

/**
 * Records the facts a conversation collected, keeping superseded values as history. Two statements
 * whatever their number (the current values of all of them in one SELECT, then the changed rows in
 * one UPSERT), plus the history and index writes of a value that changed. Returns whether the facts
 * may now be over LIMITS.facts (compactFacts has something to drop).
 */
export function rememberFacts(sql: SqlStorage, r: MemoryRecord, now: number): boolean {
  const at = r.startedAt;
  const kept = r.facts.map((f) => ({ id: f.id, value: JSON.stringify(f.value) })).filter((f) => f.value.length <= LIMITS.factValueChars);
  if (kept.length === 0) return false;
  const found = sql
    .exec<CurrentFact & { fact_id: string | null; updated_at: number; total: number }>(
      `SELECT f.fact_id, f.value, f.conversation_id, f.collected_at, f.updated_at, f.valid_from, (SELECT count(*) FROM facts) AS total
       FROM json_each(?) j LEFT JOIN facts f ON f.fact_id = j.value`,
      JSON.stringify(kept.map((f) => f.id)),
    )
    .toArray();
  let total = found[0]?.total ?? 0;
  const current = new Map<string, CurrentFact & { updated_at: number }>();
  for (const f of found) if (f.fact_id !== null) current.set(f.fact_id, f);
  // The rows as they will be, in order (a fact named twice: the later decides, as it would have one statement at a time).
  const rows = new Map<string, Row>();
  const reindex: string[] = [];
  for (const { id, value } of kept) {
    const cur = current.get(id);
    let row: Row | null;
    if (cur === undefined) {
      row = [id, value, r.conversationId, at, now, at];
      reindex.push(id);
      total++;
    } else if (at >= cur.collected_at) {
      const changed = cur.value !== value;
      if (changed) addHistory(sql, { fact_id: id, value: cur.value, conversation_id: cur.conversation_id, valid_from: cur.valid_from ?? cur.collected_at, valid_to: at });
      row = [id, value, r.conversationId, at, now, changed ? at : (cur.valid_from ?? cur.collected_at)];
      // The index is rewritten only when what it shows changes: a confirmation of the same value costs no index write.
      if (changed) reindex.push(id);
    } else if (cur.value !== value) {
      // An older call, delivered late, with another value: it was true until the current value began.
      addHistory(sql, { fact_id: id, value, conversation_id: r.conversationId, valid_from: at, valid_to: cur.valid_from ?? cur.collected_at });
      reindex.push(id);
      row = null;
    } else {
      const from = Math.min(cur.valid_from ?? cur.collected_at, at);
      row = from === cur.valid_from ? null : [id, cur.value, cur.conversation_id, cur.collected_at, cur.updated_at, from];
    }
    if (row !== null) {
      rows.set(id, row);
      current.set(id, { value: row[1], conversation_id: row[2], collected_at: row[3], updated_at: row[4], valid_from: row[5] });
    }
  }
  if (rows.size > 0) {
    sql.exec(
      `INSERT INTO facts (fact_id, value, conversation_id, collected_at, updated_at, valid_from)
       SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5 FROM json_each(?) WHERE true
       ON CONFLICT (fact_id) DO UPDATE SET value = excluded.value, conversation_id = excluded.conversation_id,
         collected_at = excluded.collected_at, updated_at = excluded.updated_at, valid_from = excluded.valid_from`,
      JSON.stringify([...rows.values()]),
    );
  }
  if (reindex.length > 0) refreshIndex(sql, [...new Set(reindex)], current);
  return total > LIMITS.facts;
}

function addHistory(sql: SqlStorage, h: FactHistoryRow): void {
  sql.exec(
    "INSERT OR IGNORE INTO fact_history (fact_id, value, conversation_id, valid_from, valid_to) VALUES (?, ?, ?, ?, ?)",
    h.fact_id,
    h.value,
    h.conversation_id,
    Math.min(h.valid_from, h.valid_to),
    h.valid_to,
  );
  sql.exec(
    `DELETE FROM fact_history WHERE fact_id = ? AND rowid IN
       (SELECT rowid FROM fact_history WHERE fact_id = ? ORDER BY valid_to DESC, valid_from DESC LIMIT -1 OFFSET ?)`,
    h.fact_id,
    h.fact_id,
    LIMITS.factHistoryPerFact,
  );
  sql.exec(
    "DELETE FROM fact_history WHERE rowid IN (SELECT rowid FROM fact_history ORDER BY valid_to DESC LIMIT -1 OFFSET ?)",
    LIMITS.factHistoryTotal,
  );
}

/** A stored fact value (JSON text) as a person reads it: strings bare, anything else as JSON. */
export function displayValue(json: string): string {
  try {
    const v = JSON.parse(json) as unknown;
    return typeof v === "string" ? v : JSON.stringify(v);
  } catch {
    return json;
  }
}

const day = (seconds: number) => new Date(seconds * 1000).toISOString().slice(0, 10);

/**
 * The recall documents of these facts (their current values as `current` holds them, after this
 * call's writes): each value, then each old one with the date it stopped being true. Three
 * statements however many facts.
 */
function refreshIndex(sql: SqlStorage, factIds: string[], current: Map<string, CurrentFact>): void {
  const ids = JSON.stringify(factIds);
  const history = new Map<string, FactHistoryRow[]>();
  const rows = sql
    .exec<FactHistoryRow>(
      `SELECT fact_id, value, conversation_id, valid_from, valid_to FROM fact_history
       WHERE fact_id IN (SELECT value FROM json_each(?)) ORDER BY fact_id, valid_to DESC, valid_from DESC`,
      ids,
    )
    .toArray();
  for (const h of rows) history.set(h.fact_id, [...(history.get(h.fact_id) ?? []), h]);
  const docs: FactDocument[] = [];
  for (const factId of factIds) {
    const cur = current.get(factId);
    if (cur) docs.push({ factId, conversationId: cur.conversation_id, at: cur.collected_at, body: `${factId}: ${displayValue(cur.value)}` });
    for (const h of history.get(factId) ?? []) {
      docs.push({ factId, conversationId: h.conversation_id, at: h.valid_from, body: `${factId}: ${displayValue(h.value)} (until ${day(h.valid_to)})` });
    }
  }
  indexFacts(sql, ids, docs);
}

/** Every fact's old values, newest first within a fact. */
export function allHistory(sql: SqlStorage): Map<string, FactHistoryRow[]> {
  const out = new Map<string, FactHistoryRow[]>();
  const rows = sql
    .exec<FactHistoryRow>("SELECT fact_id, value, conversation_id, valid_from, valid_to FROM fact_history ORDER BY fact_id, valid_to DESC, valid_from DESC")
    .toArray();
  for (const row of rows) {
    const list = out.get(row.fact_id);
    if (list) list.push(row);
    else out.set(row.fact_id, [row]);
  }
  return out;
}

/**
 * Keeps facts bounded: at most LIMITS.facts current values (the most recently collected); the
 * history and index documents of a fact dropped here go with it. (History is bounded where it is
 * written, `addHistory`.) Runs after a call whose facts may have gone over the bound (rememberFacts says).
 */
export function compactFacts(sql: SqlStorage): void {
  const dropped = sql.exec(
    "DELETE FROM facts WHERE fact_id IN (SELECT fact_id FROM facts ORDER BY collected_at DESC, fact_id LIMIT -1 OFFSET ?)",
    LIMITS.facts,
  ).rowsWritten;
  if (dropped === 0) return;
  sql.exec("DELETE FROM fact_history WHERE fact_id NOT IN (SELECT fact_id FROM facts)");
  forgetFactsNotIn(sql);
}
