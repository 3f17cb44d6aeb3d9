/**
 * GET /v1/health/details (Bearer API_KEY): is postcall healthy, and if not, which part? Three
 * sources, read in parallel, each allowed to fail alone (its part then says so):
 *
 * - the stats object (src/objects/health-stats/stats.ts): webhooks accepted / refused / failed per hour, the last
 *   accepted event of each type, and the outboxes that are failing to deliver;
 * - D1 (src/storage/health.ts): calls per day, durations, the projection's lag, missing audio;
 * - forwarding: how many destinations, and the dead letters waiting (src/storage/forwarding.ts).
 *
 * `problems` names what is wrong in words an operator can act on; `diagnose` is pure and tested.
 * docs/health.md says what is counted, where, and what is approximate.
 */
import { config } from "../lib/config";
import type { Env } from "../lib/env";
import { json } from "../lib/errors";
import { iso } from "../lib/time";
import { flushNow } from "../memory/health-counts";
import { statsObject } from "../memory/objects";
import { STUCK_ATTEMPTS } from "../records/limits";
import type { StatsView } from "../memory/rpc";
import { failureSummary, type FailureSummary } from "../storage/forwarding";
import { callsPerDaySeries, durationLabels } from "../records/health-charts";
import { callsPerDay, durationBuckets, failedCallsPerDay, missingAudio, projectionLag, type MissingAudio, type ProjectionLag } from "../storage/health";

const DAY = 86_400;
const HOUR = 3_600;

/** Refusals worth a warning: at least this many in 24 h, and at least this share of all webhook requests. */
export const REFUSALS_MIN = 10;
export const REFUSALS_SHARE = 0.1;
/** D1 lagging behind the webhooks by more than this (seconds) is worth a warning. */
export const LAG_WARN_SECONDS = 300;

export type Severity = "ok" | "warning" | "error";
export interface Problem {
  code: "webhook_refusals" | "webhook_failures" | "outbox_backlog" | "projection_lag" | "audio_missing" | "forwarding_failures" | "stats_unavailable" | "d1_unavailable";
  severity: Exclude<Severity, "ok">;
  message: string;
}

type Tallies = Record<string, Record<string, number>>;

const HINTS: Record<string, string> = {
  signature_mismatch: "the secret in ElevenLabs is not one of ELEVENLABS_WEBHOOK_SECRET, or someone without it is sending",
  signature_missing: "requests without a signature: not ElevenLabs, or HMAC authentication is off for the webhook",
  signature_malformed: "requests with an unreadable ElevenLabs-Signature header",
  signature_expired: "signatures older than SIGNATURE_MAX_AGE_SECONDS: replayed requests, or a clock far off",
  signature_in_future: "signatures from the future: a clock far off",
  ip_not_allowed: "sources outside ALLOWED_SOURCE_IPS",
  payload_too_large: "bodies over MAX_BODY_BYTES",
  invalid_json: "signed bodies that are not JSON",
  invalid_payload: "signed events without a usable type, conversation or agent id",
};

function tallies(rows: { metric: string; key: string; n: number }[]): Tallies {
  const out: Tallies = { accepted: {}, duplicate: {}, ignored: {}, dropped: {}, refused: {}, initiation_refused: {}, failed: {} };
  for (const r of rows) (out[r.metric] ??= {})[r.key] = r.n;
  return out;
}

const total = (t: Record<string, number> | undefined) => Object.values(t ?? {}).reduce((a, b) => a + b, 0);

export interface Facts {
  nowSeconds: number;
  day: Tallies | null;
  backlog: StatsView["backlog"] | null;
  lag: ProjectionLag | null;
  audio: MissingAudio | null;
  /** Dead letters of forwarding; null when D1 could not say. */
  forwarding?: FailureSummary | null;
}

/** What is wrong, worst first. Pure. */
export function diagnose(f: Facts): Problem[] {
  const problems: Problem[] = [];
  if (f.day === null) problems.push({ code: "stats_unavailable", severity: "warning", message: "The webhook counters could not be read." });
  else {
    const refused = total(f.day["refused"]);
    const all = refused + total(f.day["accepted"]) + total(f.day["duplicate"]) + total(f.day["ignored"]) + total(f.day["dropped"]);
    if (refused >= REFUSALS_MIN && refused >= all * REFUSALS_SHARE) {
      const [top, n] = Object.entries(f.day["refused"]!).sort((a, b) => b[1] - a[1])[0]!;
      problems.push({
        code: "webhook_refusals",
        severity: "warning",
        message: `${refused} of ${all} post-call webhook requests were refused in the last 24 hours, most as ${top} (${n}): ${HINTS[top] ?? "see the refusals by reason"}.`,
      });
    }
    const failed = total(f.day["failed"]);
    if (failed > 0) {
      problems.push({
        code: "webhook_failures",
        severity: "error",
        message: `${failed} webhook requests were answered 5xx in the last 24 hours (not kept: ElevenLabs retries transcriptions if retries are on, never audio).`,
      });
    }
  }
  if (f.backlog !== null && f.backlog.objects > 0) {
    const b = f.backlog;
    const age = b.oldestCreatedAt === null ? null : f.nowSeconds - b.oldestCreatedAt;
    problems.push({
      code: "outbox_backlog",
      severity: b.maxAttempts >= STUCK_ATTEMPTS ? "error" : "warning",
      message:
        `${b.pending} acknowledged events in ${b.objects} outbox${b.objects === 1 ? "" : "es"} are not yet in D1/R2` +
        `${age === null ? "" : `, the oldest for ${duration(age)}`}, after up to ${b.maxAttempts} failed attempts` +
        `${b.worst[0]?.last_error ? ` (last error: ${b.worst[0].last_error})` : ""}. They are retried until they succeed.`,
    });
  }
  if (f.forwarding && f.forwarding.total > 0) {
    const top = f.forwarding.byDestination[0]!;
    problems.push({
      code: "forwarding_failures",
      severity: "warning",
      message: `${f.forwarding.total} forwarded event${f.forwarding.total === 1 ? "" : "s"} could not be delivered, ${top.n} to ${top.destination}: see Forwarding failures (they are kept until retried).`,
    });
  }
  if (f.lag === null || f.audio === null) problems.push({ code: "d1_unavailable", severity: "error", message: "D1 could not be queried." });
  if (f.lag?.maxLagSeconds != null && f.lag.maxLagSeconds > LAG_WARN_SECONDS) {
    problems.push({
      code: "projection_lag",
      severity: "warning",
      message: `Conversations reached D1 up to ${duration(f.lag.maxLagSeconds)} after their webhook was acknowledged in the last 24 hours (average ${duration(Math.round(f.lag.avgLagSeconds ?? 0))}).`,
    });
  }
  if (f.audio !== null && f.audio.last24h > 0) {
    problems.push({
      code: "audio_missing",
      severity: "warning",
      message: `${f.audio.last24h} conversation${f.audio.last24h === 1 ? "" : "s"} of the last 24 hours never received ${f.audio.last24h === 1 ? "its" : "their"} audio webhook (their agent sends audio for other calls). ElevenLabs never retries audio.`,
    });
  }
  const rank = { error: 0, warning: 1 };
  return problems.sort((a, b) => rank[a.severity] - rank[b.severity]);
}

function duration(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 2 * HOUR) return `${Math.round(seconds / 60)} min`;
  if (seconds < 2 * DAY) return `${Math.round(seconds / HOUR)} h`;
  return `${Math.round(seconds / DAY)} days`;
}

/** The source's answer, or null (logged) when it fails, synchronously or not: one failing source must not fail the page. */
const settled = async <T>(read: () => Promise<T>, what: string): Promise<T | null> => {
  try {
    return await read();
  } catch (err) {
    console.error(`health: ${what} unavailable`, err instanceof Error ? err.message : String(err));
    return null;
  }
};

const dayLabel = (day: number) => new Date(day * DAY * 1000).toISOString().slice(0, 10);

export async function getHealthDetails(env: Env, nowMs = Date.now()): Promise<Response> {
  const now = Math.floor(nowMs / 1000);
  const cfg = config(env);
  const since24h = now - DAY;
  const since30d = now - 30 * DAY;
  const today = Math.floor(now / DAY);
  // This isolate's own tallies first, so what it just counted shows (other isolates flush on their own).
  await settled(() => flushNow(env), "flush");
  const [stats, perDay, failedPerDay, durations, lag, audio, forwarding] = await Promise.all([
    settled(() => statsObject(env).readStats(now), "stats object"),
    settled(() => callsPerDay(env, today - 29), "D1 calls per day"),
    settled(() => failedCallsPerDay(env, (today - 29) * DAY), "D1 failed calls per day"),
    settled(() => durationBuckets(env, Math.floor(since30d / DAY)), "D1 durations"),
    settled(() => projectionLag(env, since24h), "D1 projection lag"),
    settled(() => missingAudio(env, { since30d, since24h, receivedBefore: now - cfg.audioBackfillAfterSeconds }), "D1 missing audio"),
    settled(() => failureSummary(env.DB), "D1 forwarding failures"),
  ]);
  const day = stats ? tallies(stats.window24h) : null;
  const problems = diagnose({ nowSeconds: now, day, backlog: stats?.backlog ?? null, lag, audio, forwarding });

  const days = Array.from({ length: 30 }, (_, i) => today - 29 + i);
  const outcomes = callsPerDaySeries(days, [...(perDay ?? []), ...(failedPerDay ?? [])]);
  const hourNow = now - (now % HOUR);
  const hours = Array.from({ length: 24 }, (_, i) => hourNow - (23 - i) * HOUR);
  const reasons: Record<string, number[]> = {};
  for (const r of stats?.hourly ?? []) {
    const key = r.metric === "refused" ? r.key : `initiation:${r.key}`;
    const i = (r.hour - hours[0]!) / HOUR;
    if (i >= 0 && i < hours.length) (reasons[key] ??= hours.map(() => 0))[i]! += r.n;
  }
  const backlog = stats?.backlog ?? null;

  return json({
    generated_at: iso(now),
    status: problems.some((p) => p.severity === "error") ? "error" : problems.length > 0 ? "warning" : "ok",
    problems,
    webhooks: stats && {
      last_24h: day,
      last_30d: tallies(stats.window30d),
      last_accepted: Object.fromEntries(stats.last.map((e) => [e.type, { at: iso(e.at), conversation_id: e.conversation_id }])),
    },
    outbox: backlog && {
      objects: backlog.objects,
      pending: backlog.pending,
      oldest_at: iso(backlog.oldestCreatedAt),
      oldest_age_seconds: backlog.oldestCreatedAt === null ? null : now - backlog.oldestCreatedAt,
      max_attempts: backlog.maxAttempts,
      stale_reports: backlog.stale,
      dropped_reports: backlog.dropped,
      worst: backlog.worst.map((w) => ({
        object: w.object,
        pending: w.pending,
        oldest_at: iso(w.oldest_created_at),
        attempts: w.max_attempts,
        last_error: w.last_error,
        reported_at: iso(w.reported_at),
      })),
    },
    projection: lag && {
      conversations_24h: lag.conversations,
      avg_lag_seconds: lag.avgLagSeconds === null ? null : Math.round(lag.avgLagSeconds * 10) / 10,
      max_lag_seconds: lag.maxLagSeconds,
      last_projected_at: iso(lag.lastProjectedAt),
    },
    audio: audio && {
      expected_within_seconds: cfg.audioBackfillAfterSeconds,
      missing_24h: audio.last24h,
      missing_30d: audio.last30d,
      missing: audio.examples.map((e) => ({ ...e, started_at: iso(e.started_at), received_at: iso(e.received_at) })),
    },
    forwarding: forwarding && {
      destinations: cfg.forwardDestinations.length,
      failures: forwarding.total,
      oldest_failed_at: iso(forwarding.oldestFailedAt),
      by_destination: forwarding.byDestination.map((d) => ({ destination: d.destination, failures: d.n, last_failed_at: iso(d.last_failed_at) })),
    },
    charts: {
      calls_per_day: { days: days.map(dayLabel), outcomes },
      refusals_per_hour: { hours: hours.map((h) => iso(h)), reasons },
      call_durations: { buckets: durationLabels(), counts: durations ?? durationLabels().map(() => 0) },
    },
    counters: stats && { flushes: stats.writes.flushes, rows_written: stats.writes.rowsWritten },
  });
}
