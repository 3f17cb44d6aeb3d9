/**
 * vitest globalSetup of the forwarding project: the same stand-in for ElevenLabs' API as the main
 * project's (test/global/elevenlabs-api.ts), on a port of its own (POSTCALL_FAKE_API_PORT_FORWARDING,
 * chosen in vitest.config.ts), so the two projects can run in one vitest run without sharing a port.
 */
import type { TestProject } from "vitest/node";
import { serveFakeApi } from "./elevenlabs-api";

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  return serveFakeApi(project, Number(process.env["POSTCALL_FAKE_API_PORT_FORWARDING"]));
}
