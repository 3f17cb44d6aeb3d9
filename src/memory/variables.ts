/**
 * Renders a user's memory as ElevenLabs dynamic variables. Pure: no bindings.
 *
 * Values are strings, numbers or booleans only (ElevenLabs' rule), so lists are joined. Built-ins
 * always win, then the user's scalar facts (one variable per data-collection id), then operator
 * defaults for variables the agent defines and the user lacks.
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
}

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

export function renderVariables(snap: MemorySnapshot, opts: RenderOptions): Record<string, VariableValue> {
  const vars: Record<string, VariableValue> = {};
  for (const [k, v] of Object.entries(opts.defaults)) {
    if (!k.startsWith("system__")) vars[k] = v;
  }
  for (const f of snap.facts) {
    const v = f.value;
    if (!isFactVariableName(f.id)) continue;
    if (typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v))) vars[f.id] = v;
  }
  const last = snap.lastCallAt;
  vars["previous_topics"] = previousTopics(snap.recent, opts.previousTopicsMaxChars);
  vars["last_call_summary"] = snap.lastCallSummary ?? "";
  vars["last_call_at"] = last === null ? "" : new Date(last * 1000).toISOString();
  vars["call_count"] = snap.callCount;
  vars["days_since_last_call"] = last === null ? -1 : Math.max(0, Math.floor((opts.nowSeconds - last) / 86400));
  vars["is_returning_user"] = snap.callCount > 0;
  return vars;
}
