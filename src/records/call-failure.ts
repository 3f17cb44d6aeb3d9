/** A call_initiation_failure event as postcall stores it (D1 `call_failures`). Pure. */
import { normalisePhone } from "./identity";
import { boundedJson, int, isObj, nonEmpty, obj, type Json } from "./bounds";
import { clip } from "./limits";
import { agentIdOf, conversationIdOf, type Envelope } from "./payload";

export interface CallFailureRecord {
  conversationId: string;
  agentId: string;
  failureReason: string;
  provider: string | null;
  fromNumber: string | null;
  toNumber: string | null;
  sipStatusCode: number | null;
  callSid: string | null;
  metadata: Json;
  eventTimestamp: number | null;
}

export function normaliseCallFailure(envelope: Envelope, defaultCountryCode: string): CallFailureRecord {
  const data = envelope.data;
  const conversationId = conversationIdOf(data);
  const agentId = agentIdOf(data);
  const metadata = obj(data["metadata"]);
  const body = obj(metadata["body"]);
  const provider = nonEmpty(metadata["type"]);
  const twilio = provider === "twilio";
  return {
    conversationId,
    agentId,
    failureReason: clip(nonEmpty(data["failure_reason"]), 256) ?? "unknown",
    provider: clip(provider, 64),
    fromNumber: normalisePhone(twilio ? body["From"] : body["from_number"], defaultCountryCode),
    toNumber: normalisePhone(twilio ? body["To"] : body["to_number"], defaultCountryCode),
    sipStatusCode: int(body["sip_status_code"]),
    callSid: clip(nonEmpty(twilio ? body["CallSid"] : body["call_sid"]), 256),
    // No raw copy of a call failure is kept, so its metadata is the record's own: bounded like any value.
    metadata: (isObj(data["metadata"]) ? boundedJson(data["metadata"]) : null) as Json,
    eventTimestamp: envelope.eventTimestamp,
  };
}
