/**
 * What the console needs to say why a page is empty: GET /v1/forwarding/failures says how many
 * destinations FORWARD_DESTINATIONS names (none: forwarding is off, so no failure can be listed), and
 * GET /v1/imports whether ELEVENLABS_API_KEY is set (without it no import can fetch anything).
 */
import { describe, expect, it } from "vitest";
import { API_KEY, BASE } from "./helpers";
import { sendWith } from "./worker-with";

const get = async (patch: Record<string, string>, path: string): Promise<Record<string, unknown>> => {
  const res = await sendWith(patch, new Request(`${BASE}${path}`, { headers: { Authorization: `Bearer ${API_KEY}` } }));
  expect(res.status, await res.clone().text()).toBe(200);
  return res.json();
};

const ONE = JSON.stringify([{ name: "crm", url: "https://crm.example/hook", events: ["conversation.stored"] }]);

describe("why a console page is empty", () => {
  it("forwarding failures say how many destinations are configured: 0 when forwarding is off", async () => {
    expect(await get({ FORWARD_DESTINATIONS: "" }, "/v1/forwarding/failures")).toMatchObject({ failures: [], destinations: 0 });
    expect(await get({ FORWARD_DESTINATIONS: ONE, FORWARD_SIGNING_SECRET: `whsec_${btoa("console-empty-states-signing-key-32")}` }, "/v1/forwarding/failures")).toMatchObject({ destinations: 1 });
  });

  it("imports say whether ELEVENLABS_API_KEY is set", async () => {
    expect(await get({ ELEVENLABS_API_KEY: "" }, "/v1/imports")).toMatchObject({ imports: [], elevenlabs_api_key_set: false });
    expect(await get({ ELEVENLABS_API_KEY: " , " }, "/v1/imports")).toMatchObject({ elevenlabs_api_key_set: false });
    expect(await get({ ELEVENLABS_API_KEY: "xi-key" }, "/v1/imports")).toMatchObject({ elevenlabs_api_key_set: true });
  });
});
