/**
 * AGENT_API_KEY (src/lib/http/auth.ts): accepted where ElevenLabs itself calls us, refused with a
 * 403 on every other route, so the key kept in an agent's settings cannot read transcripts or delete users.
 */
import { describe, expect, it } from "vitest";
import { api, initiation } from "./api-helpers";

const AGENT = "test-agent-key";

/** Every /v1 route and method outside the agent's list (src/index.ts). */
const FULL_ONLY: [string, string][] = [
  ["GET", "/v1/users"],
  ["GET", "/v1/search?q=x"],
  ["GET", "/v1/users/u1/memory"],
  ["GET", "/v1/users/u1/conversations"],
  ["GET", "/v1/users/u1/export"],
  ["GET", "/v1/users/u1/export"],
  ["DELETE", "/v1/users/u1"],
  ["PUT", "/v1/users/u1/phones/%2B14155550123"],
  ["DELETE", "/v1/users/u1/phones/%2B14155550123"],
  ["GET", "/v1/phones/%2B14155550123/initiation"],
  ["GET", "/v1/conversations/c1"],
  ["GET", "/v1/conversations/c1/audio"],
  ["GET", "/v1/conversations?unattributed=true"],
  ["POST", "/v1/conversations/c1/attribute"],
  ["POST", "/v1/conversations/c1/audio/backfill"],
  ["POST", "/v1/conversations/c1/audio/link"],
  ["POST", "/v1/imports"],
  ["GET", "/v1/imports"],
  ["GET", "/v1/imports/i1"],
  ["GET", "/v1/forwarding/failures"],
  ["POST", "/v1/forwarding/failures/f1/retry"],
  ["GET", "/v1/health/details"],
  ["POST", "/v1/users/u1/context"],
  ["GET", "/v1/anything-else"],
];

describe("AGENT_API_KEY", () => {
  it.each(FULL_ONLY)("is refused on %s %s", async (method, path) => {
    for (const key of [AGENT, "test-agent-key-2"]) {
      const res = await api(method, path, key);
      expect(res.status).toBe(403);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("agent_key_not_allowed");
    }
  });

  it("is accepted for a user's context and the initiation webhook", async () => {
    const ctx = await api("GET", "/v1/users/agent-key-user/context", AGENT);
    expect(ctx.status).toBe(200);
    const init = await initiation({ caller_id: "+14155550199", agent_id: "a", called_number: "+1", call_sid: "s" }, { key: AGENT });
    expect(init.status).toBe(200);
  });

  it("leaves API_KEY its full access, and an unknown key a 401", async () => {
    expect((await api("GET", "/v1/users")).status).toBe(200);
    expect((await api("GET", "/v1/users/agent-key-user/context", "not-a-key")).status).toBe(401);
  });
});
