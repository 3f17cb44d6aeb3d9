/**
 * Whether bench/recall-set/set.json is exactly what bench/recall-set/generate.mjs produces from its
 * seed (so the committed set is reproducible and nobody edited it by hand), computed in Node, where
 * the generator runs, and handed to test/recall-set.test.ts through `provide`.
 */
import { readFileSync } from "node:fs";

/** @param {import("vitest/node").TestProject} project */
export default async function setup(project) {
  const { json } = await import("../../bench/recall-set/generate.mjs");
  const committed = readFileSync(new URL("../../bench/recall-set/set.json", import.meta.url), "utf8");
  project.provide("recallSetReproducible", committed === json);
}
