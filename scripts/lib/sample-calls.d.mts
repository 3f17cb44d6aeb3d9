// Types of sample-calls.mjs for the TypeScript test that imports it (test/sample-data.test.ts).
export interface SampleFact {
  value: string | number | boolean | string[] | null;
  rationale: string;
}
export interface SampleCall {
  title: string;
  duration: number;
  summary: string;
  /** null: the fixture's own transcript (test/fixtures/transcription.json). */
  transcript: { role: "agent" | "user"; message: string; time_in_call_secs: number }[] | null;
  facts: Record<string, SampleFact>;
}
export const SAMPLE_CALLS: SampleCall[];
export function sampleCall(title: string | undefined): SampleCall;
export function callerName(userId: string | null | undefined): string | null;
export function applySampleCall<E extends Record<string, any>>(event: E, call: SampleCall, name: string | null): E;
