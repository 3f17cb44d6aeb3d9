/** Reading GET /v1/health/details in tests. */
import { apiGet } from "./helpers";

export interface Health {
  status: "ok" | "warning" | "error";
  problems: { code: string; severity: string; message: string }[];
  webhooks: {
    last_24h: Record<string, Record<string, number>>;
    last_30d: Record<string, Record<string, number>>;
    last_accepted: Record<string, { at: string; conversation_id: string | null }>;
  } | null;
  outbox: {
    objects: number;
    pending: number;
    oldest_at: string | null;
    oldest_age_seconds: number | null;
    max_attempts: number;
    worst: { object: string; pending: number; attempts: number; last_error: string | null }[];
  } | null;
  projection: { conversations_24h: number; avg_lag_seconds: number | null; max_lag_seconds: number | null } | null;
  audio: { expected_within_seconds: number; missing_24h: number; missing_30d: number; missing: { conversation_id: string }[] } | null;
  forwarding: { destinations: number; failures: number; oldest_failed_at: string | null; by_destination: { destination: string; failures: number }[] } | null;
  charts: {
    calls_per_day: { days: string[]; outcomes: Record<string, number[]> };
    refusals_per_hour: { hours: string[]; reasons: Record<string, number[]> };
    call_durations: { buckets: string[]; counts: number[] };
  };
  counters: { flushes: number; rows_written: number } | null;
}

export async function health(): Promise<Health> {
  const res = await apiGet("/v1/health/details");
  if (res.status !== 200) throw new Error(`health ${res.status}: ${await res.text()}`);
  return res.json<Health>();
}

export const codes = (h: Health) => h.problems.map((p) => p.code).sort();
export const sum = (xs: number[] | undefined) => (xs ?? []).reduce((a, b) => a + b, 0);
