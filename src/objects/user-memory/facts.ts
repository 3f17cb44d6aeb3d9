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
import { forgetFactsNotIn, indexFact } from "./recall-index";
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

/** Records the facts a conversation collected, keeping superseded values as history. */
export function rememberFacts(sql: SqlStorage, r: MemoryRecord, now: number): void {
  const at = r.startedAt;
  for (const fact of r.facts) {
    const value = JSON.stringify(fact.value);
    if (value.length > LIMITS.factValueChars) continue;
    const cur = sql
      .exec<CurrentFact>("SELECT value, conversation_id, collected_at, valid_from FROM facts WHERE fact_id = ?", fact.id)
      .toArray()[0];
    // The index is rewritten only when what it shows changes: a confirmation of the same value costs no index write.
    let reindex = true;
    if (cur === undefined) {
      sql.exec(
        "INSERT INTO facts (fact_id, value, conversation_id, collected_at, updated_at, valid_from) VALUES (?, ?, ?, ?, ?, ?)",
        fact.id,
        value,
        r.conversationId,
        at,
        now,
        at,
      );
    } else if (at >= cur.collected_at) {
      const changed = cur.value !== value;
      if (changed) addHistory(sql, { fact_id: fact.id, value: cur.value, conversation_id: cur.conversation_id, valid_from: cur.valid_from ?? cur.collected_at, valid_to: at });
      sql.exec(
        `UPDATE facts SET value = ?, conversation_id = ?, collected_at = ?, updated_at = ?,
           valid_from = CASE WHEN ? THEN ? ELSE coalesce(valid_from, collected_at) END
         WHERE fact_id = ?`,
        value,
        r.conversationId,
        at,
        now,
        changed ? 1 : 0,
        at,
        fact.id,
      );
      reindex = changed;
    } else if (cur.value !== value) {
      // An older call, delivered late, with another value: it was true until the current value began.
      addHistory(sql, { fact_id: fact.id, value, conversation_id: r.conversationId, valid_from: at, valid_to: cur.valid_from ?? cur.collected_at });
    } else {
      sql.exec("UPDATE facts SET valid_from = min(coalesce(valid_from, collected_at), ?) WHERE fact_id = ?", at, fact.id);
      reindex = false;
    }
    if (reindex) refreshIndex(sql, fact.id);
  }
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

/** The recall documents of one fact: its current value and each old one with the date it stopped being true. */
function refreshIndex(sql: SqlStorage, factId: string): void {
  const docs: { conversationId: string | null; at: number; body: string }[] = [];
  const cur = sql.exec<CurrentFact>("SELECT value, conversation_id, collected_at, valid_from FROM facts WHERE fact_id = ?", factId).toArray()[0];
  if (cur) docs.push({ conversationId: cur.conversation_id, at: cur.collected_at, body: `${factId}: ${displayValue(cur.value)}` });
  for (const h of historyOf(sql, factId)) {
    docs.push({ conversationId: h.conversation_id, at: h.valid_from, body: `${factId}: ${displayValue(h.value)} (until ${day(h.valid_to)})` });
  }
  indexFact(sql, factId, docs);
}

export function historyOf(sql: SqlStorage, factId: string): FactHistoryRow[] {
  return sql
    .exec<FactHistoryRow>(
      "SELECT fact_id, value, conversation_id, valid_from, valid_to FROM fact_history WHERE fact_id = ? ORDER BY valid_to DESC, valid_from DESC",
      factId,
    )
    .toArray();
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
 * written, `addHistory`.) Runs after every call that collected facts: one statement unless it drops some.
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
