/**
 * The health page's two call charts as pure values (src/api/health.ts fills them from D1 rows):
 * - call durations: which bin a call's length falls in, and a label for every bin (the console
 *   shows them all: with every other one hidden, a 3:32 call seemed to sit between "1-2 min" and
 *   "5-10 min");
 * - calls per day by outcome, where a call that never connected (call_initiation_failure) is a
 *   series of its own, not left out.
 */

/** Upper bounds (seconds, exclusive) of the duration bins; the last bin is everything longer. */
export const DURATION_BOUNDS = [30, 60, 120, 300, 600, 1200];

/** The bin of a call `secs` long: 0 for under 30 s, ..., DURATION_BOUNDS.length for 20 min or more. */
export function durationBin(secs: number): number {
  const i = DURATION_BOUNDS.findIndex((b) => secs < b);
  return i === -1 ? DURATION_BOUNDS.length : i;
}

const short = (s: number) => (s < 60 ? `${s}` : `${s / 60}`);
const unit = (s: number) => (s < 60 ? "s" : "min");

/** One label per bin, in order: "< 30 s", "30–60 s", "1–2 min", "2–5 min", ..., "≥ 20 min". */
export function durationLabels(): string[] {
  const first = DURATION_BOUNDS[0]!;
  const last = DURATION_BOUNDS.at(-1)!;
  const between = DURATION_BOUNDS.slice(1).map((hi, i) => {
    const lo = DURATION_BOUNDS[i]!;
    // "30–60 s", not "30 s–1 min": both ends in the lower end's unit when it is seconds.
    return lo < 60 ? `${lo}–${hi} s` : `${short(lo)}–${short(hi)} ${unit(lo)}`;
  });
  return [`< ${short(first)} ${unit(first)}`, ...between, `≥ ${short(last)} ${unit(last)}`];
}

/** The outcomes calls per day are split into: ElevenLabs' call_successful, and calls that never connected. */
export const OUTCOMES = ["success", "failure", "unknown", "not_connected"] as const;

export interface DayCount {
  /** Days since the epoch (UTC). */
  day: number;
  outcome: string;
  n: number;
}

/** Per outcome, one count per day of `days` (consecutive UTC days); rows outside them are left out. */
export function callsPerDaySeries(days: number[], rows: DayCount[]): Record<string, number[]> {
  const out: Record<string, number[]> = Object.fromEntries(OUTCOMES.map((o) => [o, days.map(() => 0)]));
  const first = days[0] ?? 0;
  for (const r of rows) {
    const series = (out[r.outcome] ??= days.map(() => 0));
    const i = r.day - first;
    if (i >= 0 && i < days.length) series[i]! += r.n;
  }
  return out;
}
