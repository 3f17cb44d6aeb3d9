import { describe, expect, it } from "vitest";
import { conversationRecord, identityOf, normaliseForMemory, normaliseTurns, ownerOfRecord, parseEnvelope, firstSentence, type Envelope } from "../src/records/payload";
import { normaliseCallFailure } from "../src/records/call-failure";
import { normalisePhone, resolveUser } from "../src/records/identity";
import { ApiError } from "../src/lib/errors";
import fixture from "./fixtures/transcription.json";

const enc = new TextEncoder();
const opts = { userIdVariable: "user_id", defaultCountryCode: "", nowSeconds: 1_800_000_000 };
const envelopeOf = (v: unknown) => parseEnvelope(enc.encode(JSON.stringify(v)));
/**
 * The whole record as the Worker makes it: the memory's share on arrival (src/memory/arrival.ts; here
 * with the claim as the owner, no token check), its owner kept in the outbox item, and the record
 * rebuilt from the envelope and that owner at delivery (src/memory/deliveries.ts).
 */
const wholeRecord = (envelope: Envelope, o: typeof opts) => conversationRecord(envelope, ownerOfRecord(normaliseForMemory(envelope, o)), o.nowSeconds);

describe("parseEnvelope", () => {
  it("accepts event_timestamp as a number or a numeric string", () => {
    expect(envelopeOf({ type: "x", event_timestamp: 1700000000, data: {} }).eventTimestamp).toBe(1700000000);
    expect(envelopeOf({ type: "x", event_timestamp: "1700000000", data: {} }).eventTimestamp).toBe(1700000000);
    expect(envelopeOf({ type: "x", event_timestamp: "soon", data: {} }).eventTimestamp).toBeNull();
  });
  it.each([
    [new Uint8Array([0xff, 0xfe]), "invalid_json"],
    [enc.encode("{"), "invalid_json"],
    [enc.encode("null"), "invalid_payload"],
    [enc.encode('{"type":""}'), "invalid_payload"],
    [enc.encode('{"type":7}'), "invalid_payload"],
  ])("rejects %s with %s", (bytes, code) => {
    expect(() => parseEnvelope(bytes)).toThrow(expect.objectContaining({ status: 400, code }) as ApiError);
  });
});

describe("the whole record", () => {
  it("normalises the realistic fixture and ignores unknown keys", () => {
    const r = wholeRecord(envelopeOf(fixture), opts);
    expect(r).toMatchObject({
      conversationId: fixture.data.conversation_id,
      agentId: fixture.data.agent_id,
      agentName: "Acme Support",
      userId: "user_8f14e45f",
      userIdSource: "dynamic_variable",
      startedAt: 1764320100,
      durationSecs: 212,
      title: "Cracked screen replacement",
      callSuccessful: "success",
      mainLanguage: "en",
      phoneNumber: null,
    });
    expect(r.facts.map((f) => f.id).sort()).toEqual(["mentioned_products", "order_id", "preferred_name", "wants_sms_updates"]);
    expect(r.turns).toHaveLength(5);
    expect(r.turns[0]!.tools).toBeNull();
    expect(r.turns[1]!.tools).toBeNull();
    expect(r.turns[2]!.tools?.calls).toHaveLength(1);
    expect(r.turns[3]!.message).toBeNull();
  });

  it("survives missing analysis, missing metadata and odd types", () => {
    const r = wholeRecord(
      envelopeOf({ type: "post_call_transcription", data: { conversation_id: "c", agent_id: "a", analysis: null, metadata: "x", transcript: {} } }),
      opts,
    );
    expect(r).toMatchObject({ title: null, summary: null, facts: [], turns: [], durationSecs: 0, startedAt: opts.nowSeconds, userId: null });
  });

  it("treats tool_calls null and [] alike, and both turn-metric shapes", () => {
    const turns = normaliseTurns([
      { role: "agent", message: "a", time_in_call_secs: 1, tool_calls: null, tool_results: [], conversation_turn_metrics: { convai_llm_service_ttfb: { elapsed_time: 1 } } },
      { role: "agent", message: "b", time_in_call_secs: "2", tool_calls: [], conversation_turn_metrics: { metrics: { x: { elapsed_time: 1 } } } },
      "not a turn",
      { message: 5, time_in_call_secs: -3, feedback: { score: "meh" } },
    ]);
    expect(turns).toEqual([
      { index: 0, role: "agent", message: "a", timeInCallSecs: 1, tools: null, feedback: null },
      { index: 1, role: "agent", message: "b", timeInCallSecs: 2, tools: null, feedback: null },
      { index: 2, role: "unknown", message: null, timeInCallSecs: 0, tools: null, feedback: null },
    ]);
  });

  it("rejects a user id that cannot name anything", () => {
    const e = structuredClone(fixture) as any;
    e.data.user_id = "x".repeat(300);
    expect(() => wholeRecord(envelopeOf(e), opts)).toThrow(expect.objectContaining({ code: "invalid_user_id" }) as ApiError);
  });

  it("uses a configurable dynamic variable for the user id", () => {
    const e = structuredClone(fixture) as any;
    e.data.conversation_initiation_client_data.dynamic_variables.customer_ref = 1234;
    expect(wholeRecord(envelopeOf(e), { ...opts, userIdVariable: "customer_ref" }).userId).toBe("1234");
  });
});

describe("normaliseForMemory", () => {
  it("is the whole record without the transcript and the evaluation, which only D1 needs", () => {
    const envelope = parseEnvelope(new TextEncoder().encode(JSON.stringify(fixture)));
    const opts = { userIdVariable: "user_id", defaultCountryCode: "", nowSeconds: 1_700_000_000 };
    const whole = conversationRecord(envelope, identityOf(envelope, opts), opts.nowSeconds);
    const memory = normaliseForMemory(envelope, opts);
    expect(whole.turns.length).toBeGreaterThan(0);
    expect(Object.keys(whole.evaluation).length).toBeGreaterThan(0);
    expect(memory).not.toHaveProperty("turns");
    expect(memory).not.toHaveProperty("evaluation");
    const { turns: _turns, evaluation: _evaluation, ...rest } = whole;
    expect(memory).toEqual(rest);
  });
});

describe("normaliseCallFailure", () => {
  it("defaults a missing reason to unknown", () => {
    const r = normaliseCallFailure(envelopeOf({ type: "call_initiation_failure", data: { conversation_id: "c", agent_id: "a" } }), "");
    expect(r).toMatchObject({ failureReason: "unknown", provider: null, fromNumber: null });
  });
});

describe("identity", () => {
  it.each([
    ["+14155550100", "", "+14155550100"],
    ["+1 (415) 555-0100", "", "+14155550100"],
    ["tel:+44 20 7946 0958", "", "+442079460958"],
    ["sip:+14155550100@sip.example.com", "", "+14155550100"],
    ["0044 20 7946 0958", "", "+442079460958"],
    ["020 7946 0958", "44", "+442079460958"],
    ["14155550100", "", "+14155550100"],
    ["anonymous", "", null],
    ["+0123", "", null],
    ["12", "", null],
    ["", "", null],
  ])("normalisePhone(%j, %j) = %j", (raw, cc, expected) => {
    expect(normalisePhone(raw, cc)).toBe(expected);
  });

  it("prefers explicit ids over the phone number, and ignores blank ones", () => {
    const inputs = { dataUserId: " ", clientDataUserId: null, dynamicVariables: { user_id: "" }, externalNumber: "+14155550100" };
    expect(resolveUser(inputs, "user_id")).toEqual({ userId: "+14155550100", source: "phone_number", phoneNumber: "+14155550100" });
    expect(resolveUser({ ...inputs, clientDataUserId: "u1" }, "user_id")).toMatchObject({ userId: "u1", source: "client_data_user_id", phoneNumber: "+14155550100" });
  });

  it("takes the caller's number from metadata.phone_call only, never from system__caller_id (a client sets it)", () => {
    const inputs = { dataUserId: null, clientDataUserId: null, dynamicVariables: { system__caller_id: "+14155550100" }, externalNumber: undefined };
    expect(resolveUser(inputs, "user_id")).toEqual({ userId: null, source: null, phoneNumber: null });
    expect(resolveUser({ ...inputs, clientDataUserId: "u1" }, "user_id")).toEqual({ userId: "u1", source: "client_data_user_id", phoneNumber: null });
  });

  it("takes the first sentence of a summary", () => {
    expect(firstSentence("  Asked about billing.  Then left. ")).toBe("Asked about billing.");
    expect(firstSentence("No full stop here")).toBe("No full stop here");
    expect(firstSentence("Version 2.5 is out. Yes")).toBe("Version 2.5 is out.");
  });
});
