/** History imports from the local stand-in for ElevenLabs' API (test/global/elevenlabs-api.ts), for the tests that run them. */
import { expect, inject } from "vitest";
import type { ImportStatus } from "../src/memory/rpc";
import { api } from "./api-helpers";
import { FAKE_API_KEY } from "./fake-api/data";

export const base = inject("elevenLabsApiBase");

/** POST /v1/imports; returns the import's id. */
export async function startImport(body: object): Promise<string> {
  const res = await api("POST", "/v1/imports", undefined, JSON.stringify(body));
  expect(res.status).toBe(202);
  const { import_id } = await res.json<{ import_id: string }>();
  expect(import_id).toMatch(/^imp_/);
  return import_id;
}

export async function importStatus(importId: string): Promise<ImportStatus> {
  const res = await api("GET", `/v1/imports/${importId}`);
  expect(res.status).toBe(200);
  return res.json<ImportStatus>();
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `until` holds (the import runs by its own alarm). A hang guard, not a timing assertion. */
export async function waitForImport(importId: string, until: (s: ImportStatus) => boolean = (s) => s.status !== "running"): Promise<ImportStatus> {
  for (let i = 0; i < 3000; i++) {
    const s = await importStatus(importId);
    if (until(s)) return s;
    await sleep(100);
  }
  throw new Error(`import ${importId} did not get there: ${JSON.stringify(await importStatus(importId))}`);
}

/** A conversation as the stand-in serves it (GET /v1/convai/conversations/{id}). */
export async function fakeConversation(conversationId: string): Promise<Record<string, any>> {
  return (await fetch(`${base}/v1/convai/conversations/${conversationId}`, { headers: { "xi-api-key": FAKE_API_KEY } })).json<Record<string, any>>();
}

/** How often the stand-in has been asked for each path (GET /__stats). */
export async function fakeApiHits(path: string): Promise<number> {
  const stats = await (await fetch(`${base}/__stats`)).json<{ byPath: Record<string, number> }>();
  return stats.byPath[path] ?? 0;
}
