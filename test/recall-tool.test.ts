/**
 * elevenlabs/recall-tool.json, the ElevenLabs webhook tool for POST /tools/recall (README, "Let the
 * agent recall past calls"): it must be a body ElevenLabs' tools API accepts, and it must send what
 * the recall contract needs. The shape is checked by the official SDK's own serializer for
 * `POST /v1/convai/tools` (@elevenlabs/elevenlabs-js `ToolRequestModel`, unknown keys refused, in
 * test/global/recall-tool-schema.mjs), so a misspelt field (`dynamic_variables`, `requestHeaders`)
 * fails here rather than in ElevenLabs' editor.
 */
import { describe, expect, inject, it } from "vitest";
import tool from "../elevenlabs/recall-tool.json";

declare module "vitest" {
  export interface ProvidedContext {
    /** test/global/recall-tool-schema.mjs: SDK errors for the file ([] = parses); broken copies the SDK refused (true = refused). */
    recallToolSchema: { file: string[]; refused: Record<string, boolean> };
  }
}

type Prop = { type: string; description?: string; dynamic_variable?: string };
const config = tool.tool_config;
const body = config.api_schema.request_body_schema;
const props = body.properties as Record<string, Prop>;

describe("elevenlabs/recall-tool.json", () => {
  // The SDK check itself runs in Node (test/global/recall-tool-schema.mjs explains why).
  const verdicts = inject("recallToolSchema");

  it("is a tools-API body the official SDK's schema accepts, unknown keys refused", () => {
    expect(verdicts.file).toEqual([]);
  });

  it("the SDK check is strict: a misspelt key, a wrong tool type or a missing URL fails it", () => {
    expect(verdicts.refused).toEqual({ camelCaseHeaders: true, misspeltDynamicVariable: true, unknownToolType: true, missingUrl: true });
  });

  it("is a webhook tool POSTing JSON to /tools/recall at an obvious, shell-safe placeholder", () => {
    expect(config.type).toBe("webhook");
    expect(config.name).toMatch(/^[a-z0-9_]+$/);
    expect(config.api_schema.method).toBe("POST");
    expect(config.api_schema.content_type).toBe("application/json");
    const url = new URL(config.api_schema.url);
    expect(url.protocol).toBe("https:");
    expect(url.pathname).toBe("/tools/recall");
    expect(config.api_schema.url).toBe("https://postcall.YOUR-SUBDOMAIN.workers.dev/tools/recall");
    // Nothing that breaks bash when the README's sed/curl lines are pasted.
    expect(JSON.stringify(tool)).not.toMatch(/[<>`$]/);
    // ElevenLabs refuses timeouts outside 5..300 s; a recall answers in milliseconds.
    expect(config.response_timeout_secs).toBeGreaterThanOrEqual(5);
    expect(config.response_timeout_secs).toBeLessThanOrEqual(300);
  });

  it("sends the AGENT_API_KEY as a stored secret in the Authorization header, never inline", () => {
    const headers = config.api_schema.request_headers as Record<string, unknown>;
    expect(Object.keys(headers)).toEqual(["Authorization"]);
    expect(headers.Authorization).toEqual({ secret_id: "REPLACE_WITH_SECRET_ID" });
  });

  it("lets the LLM write only the query (and limit); whose memory and which call come from dynamic variables", () => {
    expect(body.type).toBe("object");
    expect([...body.required].sort()).toEqual(["query", "user_token"]);
    expect(Object.keys(props).sort()).toEqual(["agent_id", "conversation_id", "limit", "query", "user_token"]);
    expect(props.query).toMatchObject({ type: "string" });
    expect(props.query!.dynamic_variable).toBeUndefined();
    expect(props.limit).toMatchObject({ type: "integer" });
    expect(props.limit!.dynamic_variable).toBeUndefined();
    // A dynamic-variable parameter has no description: ElevenLabs takes one value source per parameter.
    expect(props.user_token).toEqual({ type: "string", dynamic_variable: "postcall_user_token" });
    expect(props.conversation_id).toEqual({ type: "string", dynamic_variable: "system__conversation_id" });
    expect(props.agent_id).toEqual({ type: "string", dynamic_variable: "system__agent_id" });
  });

  it("tells the LLM when to call it and what to put in the query", () => {
    expect(config.description.length).toBeGreaterThan(200);
    expect(config.description).toMatch(/earlier calls/i);
    expect(config.description).toMatch(/not .*THIS call/i);
    const q = props.query!.description!;
    expect(q).toMatch(/keywords/i);
    expect(q).toMatch(/names, numbers/i);
    expect(q).toMatch(/500 characters/);
    expect(props.limit!.description).toMatch(/1 to 20/);
  });
});
