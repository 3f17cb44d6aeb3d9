/**
 * Renders a user's memory as ElevenLabs dynamic variables. Pure: no bindings.
 *
 * Values are strings, numbers or booleans only (ElevenLabs' rule), so lists are joined. Built-ins
 * always win, then the user's scalar facts (one variable per data-collection id), then operator
 * defaults for variables the agent defines and the user lacks.
 *
 * The whole answer has a byte budget (CONTEXT_MAX_BYTES of UTF-8 JSON for `dynamic_variables`): a
 * prompt is not the place for a megabyte, and a fact's value is whatever a caller said. Built-ins,
 * defaults and the reserved names always come first; facts then go in newest first (by the start of
 * the call that collected them), each only if it still fits; a fact that does not fit is left out
 * and older ones may still fit. Only when the built-ins alone pass the budget (a huge
 * PREVIOUS_TOPICS_MAX_CHARS or summary) are last_call_summary, then previous_topics, cut to fit.
 */
import type { VariableValue } from "../lib/config";
import { firstSentence } from "../records/payload";
import { USER_TOKEN_VARIABLE } from "../lib/user-token";

export const BUILT_IN_VARIABLES = [
  "previous_topics",
  "last_call_summary",
  "last_call_at",
  "call_count",
  "days_since_last_call",
  "is_returning_user",
] as const;

/** Built-ins plus the token (set by src/memory/context.ts): no fact may take these names. */
const BUILT_IN = new Set<string>([...BUILT_IN_VARIABLES, USER_TOKEN_VARIABLE]);

export interface RecentConversation {
  title: string | null;
  summary: string | null;
}

export interface MemorySnapshot {
  callCount: number;
  /** Unix seconds of the most recent call's start, or null when there is none. */
  lastCallAt: number | null;
  lastCallSummary: string | null;
  /** Newest first. */
  recent: RecentConversation[];
  /** Scalar facts only: those are the ones that can become dynamic variables. */
  facts: { id: string; value: VariableValue }[];
}

export const EMPTY_SNAPSHOT: MemorySnapshot = { callCount: 0, lastCallAt: null, lastCallSummary: null, recent: [], facts: [] };

export interface RenderOptions {
  defaults: Record<string, VariableValue>;
  previousTopicsMaxChars: number;
  nowSeconds: number;
  /** Names set by the caller after rendering (USER_ID_VARIABLE): no fact may take them. */
  reserved?: readonly string[];
  /** Defaults to CONTEXT_MAX_BYTES. */
  maxBytes?: number;
}

/** Budget for the whole `dynamic_variables` object, as UTF-8 JSON bytes. */
export const CONTEXT_MAX_BYTES = 64 * 1024;
/**
 * Kept free for what is added after rendering: the token (at most 1,420 characters) and the
 * USER_ID_VARIABLE value (256 characters, escaped at most six bytes each), with their names.
 */
export const CONTEXT_RESERVED_BYTES = 3 * 1024;

const utf8 = new TextEncoder();
const bytes = (v: unknown) => utf8.encode(JSON.stringify(v)).byteLength;

export function topicOf(c: RecentConversation): string | null {
  if (c.title && c.title.trim() !== "") return c.title.trim().replace(/\s+/g, " ");
  if (c.summary && c.summary.trim() !== "") return firstSentence(c.summary);
  return null;
}

/** Most recent distinct topics, newest first, joined with "; ", whole topics only within the budget. */
export function previousTopics(recent: RecentConversation[], maxChars: number): string {
  const seen = new Set<string>();
  let out = "";
  for (const c of recent) {
    const topic = topicOf(c);
    if (topic === null) continue;
    const key = topic.toLowerCase();
    if (seen.has(key)) continue;
    seen.add(key);
    const next = out === "" ? topic : `${out}; ${topic}`;
    if (next.length > maxChars) {
      // A single topic longer than the whole budget is cut rather than dropped.
      if (out === "" && maxChars > 0) out = topic.slice(0, Math.max(0, maxChars - 1)).trimEnd() + "…";
      break;
    }
    out = next;
  }
  return out;
}

export function isFactVariableName(id: string): boolean {
  return !BUILT_IN.has(id) && !id.startsWith("system__") && id.length <= 128;
}

/** Cuts a string variable so that the whole object shrinks by about `over` bytes. */
function cut(vars: Record<string, VariableValue>, name: string, over: number): void {
  const v = vars[name];
  if (typeof v !== "string" || v === "") return;
  const size = bytes(v);
  const keep = Math.max(0, Math.floor(v.length * Math.max(0, size - over - 8) / size));
  vars[name] = keep === 0 ? "" : v.slice(0, keep).trimEnd() + "…";
}

export function renderVariables(snap: MemorySnapshot, opts: RenderOptions): Record<string, VariableValue> {
  const budget = (opts.maxBytes ?? CONTEXT_MAX_BYTES) - CONTEXT_RESERVED_BYTES;
  const reserved = new Set(opts.reserved ?? []);
  const base: Record<string, VariableValue> = {};
  for (const [k, v] of Object.entries(opts.defaults)) {
    if (!k.startsWith("system__") && !reserved.has(k)) base[k] = v;
  }
  const last = snap.lastCallAt;
  const builtIns: Record<string, VariableValue> = {
    previous_topics: previousTopics(snap.recent, opts.previousTopicsMaxChars),
    last_call_summary: snap.lastCallSummary ?? "",
    last_call_at: last === null ? "" : new Date(last * 1000).toISOString(),
    call_count: snap.callCount,
    days_since_last_call: last === null ? -1 : Math.max(0, Math.floor((opts.nowSeconds - last) / 86400)),
    is_returning_user: snap.callCount > 0,
  };
  let used = bytes({ ...base, ...builtIns });
  for (const name of ["last_call_summary", "previous_topics"]) {
    if (used > budget) {
      cut(builtIns, name, used - budget);
      used = bytes({ ...base, ...builtIns });
    }
  }
  // Facts newest first (the snapshot's order); a fact replaces a default of the same name.
  const facts: Record<string, VariableValue> = {};
  for (const f of snap.facts) {
    const v = f.value;
    if (!isFactVariableName(f.id) || reserved.has(f.id) || f.id in facts) continue;
    if (!(typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v)))) continue;
    const cost = bytes(f.id) + bytes(v) + 2 - (f.id in base ? bytes(f.id) + bytes(base[f.id]) + 2 : 0);
    if (used + cost > budget) continue;
    facts[f.id] = v;
    used += cost;
  }
  // Key order as before: defaults, facts, then the built-ins (which always win).
  const vars: Record<string, VariableValue> = { ...base };
  for (const [k, v] of Object.entries(facts)) vars[k] = v;
  return Object.assign(vars, builtIns);
}
