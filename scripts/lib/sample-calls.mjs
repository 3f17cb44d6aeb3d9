// The sample calls `npm run send-sample` sends: each its own conversation, with a transcript, a
// summary, facts and a length that agree with each other and with the title, and a caller's name
// that follows the caller (alice is Alice on every call, and never anyone else's name). Before this,
// every sample carried the one cracked-screen call, so a "Pro plan" call had a cracked-screen summary
// and every user was "Dana": on the console that reads as one user's data leaking into another's.
import { createHash } from "node:crypto";

const fact = (value, rationale) => ({ value, rationale });

/** A turn as ElevenLabs sends it, with the fields this service reads. */
const turn = (role, time_in_call_secs, message) => ({ role, message, time_in_call_secs, tool_calls: null, tool_results: null, feedback: null });

/**
 * The calls, by title. `cracked` keeps the fixture's own transcript (tool calls, feedback, an
 * interrupted turn: the shapes the tests need, and the words test/fixtures/sample-call.mp3 speaks).
 */
export const SAMPLE_CALLS = [
  {
    title: "Cracked screen replacement",
    duration: 212,
    summary: "The customer reported a cracked screen on order 4471. A replacement Phone X was shipped with two-day delivery.",
    transcript: null,
    facts: { order_id: fact(4471, "Order number mentioned."), wants_sms_updates: fact(true, "Agreed to SMS."), mentioned_products: fact(["Phone X"], "The phone that arrived cracked.") },
  },
  {
    title: "Upgrading to the Pro plan",
    duration: 95,
    summary: "The customer upgraded from the Basic to the Pro plan, billed monthly at $29 from today, the first month prorated.",
    transcript: [
      turn("agent", 0, "Hi, this is Acme support. How can I help you today?"),
      turn("user", 3, "I'd like to move from the Basic plan to Pro."),
      turn("agent", 8, "Pro is $29 a month. I can switch you today and prorate this month. Monthly or yearly billing?"),
      turn("user", 21, "Monthly, please."),
      turn("agent", 26, "Done: you are on Pro, billed monthly, starting today."),
    ],
    facts: { plan: fact("Pro", "Upgraded during the call."), billing_cycle: fact("monthly", "Chose monthly billing."), wants_sms_updates: fact(false, "Declined SMS.") },
  },
  {
    title: "Delivery address change",
    duration: 148,
    summary: "The caller moved and asked for order 5120 to go to 12 Elm Street; the agent updated the address before dispatch.",
    transcript: [
      turn("agent", 0, "Hi, this is Acme support. How can I help you today?"),
      turn("user", 4, "I've just moved. Can order 5120 go to my new address, 12 Elm Street?"),
      turn("agent", 12, "Order 5120 has not left the warehouse yet, so yes. I've changed it to 12 Elm Street."),
      turn("user", 30, "Thanks, that's all."),
    ],
    facts: { order_id: fact(5120, "Order number mentioned."), delivery_address: fact("12 Elm Street", "The new address the caller gave.") },
  },
  {
    title: "Billing question",
    duration: 305,
    summary: "The customer was charged twice for the November invoice INV-2291; the agent refunded the duplicate charge.",
    transcript: [
      turn("agent", 0, "Hi, this is Acme support. How can I help you today?"),
      turn("user", 5, "I was charged twice for November, invoice INV-2291."),
      turn("agent", 14, "I see both charges. I've refunded the second one; it shows on your card in three to five days."),
      turn("agent", 40, "Would you like text messages about the refund?"),
      turn("user", 46, "No thanks, email is fine."),
    ],
    facts: { invoice_id: fact("INV-2291", "Invoice number mentioned."), refund_issued: fact(true, "The duplicate charge was refunded."), wants_sms_updates: fact(false, "Declined text messages.") },
  },
  {
    title: "Opening hours",
    duration: 41,
    summary: "The caller asked when the Market Street store opens on Saturday: 9 am to 6 pm.",
    transcript: [
      turn("agent", 0, "Hi, this is Acme support. How can I help you today?"),
      turn("user", 3, "When is the Market Street store open on Saturday?"),
      turn("agent", 7, "From 9 am to 6 pm on Saturdays."),
    ],
    facts: { preferred_store: fact("Market Street", "The store the caller asked about.") },
  },
];

/** A call about any other title: what the caller asked, in the title's words, and nothing else claimed. */
function aboutTitle(title) {
  return {
    title,
    duration: 120,
    summary: `The caller asked about ${title.toLowerCase()}; the agent answered and no follow-up is needed.`,
    transcript: [
      turn("agent", 0, "Hi, this is Acme support. How can I help you today?"),
      turn("user", 4, `I'm calling about ${title.toLowerCase()}.`),
      turn("agent", 10, "Happy to help with that. Here is what you need to know."),
      turn("user", 90, "That answers it, thanks."),
    ],
    facts: {},
  };
}

/** The sample call for a title (the cracked-screen call without one). */
export function sampleCall(title) {
  if (title === undefined) return SAMPLE_CALLS[0];
  return SAMPLE_CALLS.find((c) => c.title.toLowerCase() === title.trim().toLowerCase()) ?? aboutTitle(title);
}

const NAMES = ["Dana", "Priya", "Tomás", "Mei", "Kwame", "Ingrid", "Omar", "Lucía", "Ravi", "Noor", "Jonas", "Aiko"];
const NOT_NAMES = new Set(["user", "other", "claimer", "test", "demo", "sample", "e2e"]);

/**
 * The caller's name, the same for a user on every call: the last word of the id when it reads as a
 * name (alice -> Alice, e2e-dana -> Dana), else one picked by the id's hash (demo-user is Dana). A
 * caller known only by a phone number gave no name: null.
 */
export function callerName(userId) {
  if (userId === null || userId === undefined) return null;
  if (userId === "demo-user") return "Dana";
  const last = userId.split(/[-_:.@\s]+/).filter(Boolean).pop() ?? "";
  if (/^[a-z]{3,}$/i.test(last) && !NOT_NAMES.has(last.toLowerCase())) return last[0].toUpperCase() + last.slice(1).toLowerCase();
  return NAMES[createHash("sha256").update(userId).digest()[0] % NAMES.length];
}

/** Writes a sample call into a post_call_transcription event built from the fixture (its shape kept). */
export function applySampleCall(event, call, name) {
  const data = event.data;
  if (call.transcript) data.transcript = call.transcript;
  data.metadata.call_duration_secs = call.duration;
  data.conversation_initiation_client_data.dynamic_variables.system__call_duration_secs = call.duration;
  data.analysis.call_summary_title = call.title;
  data.analysis.transcript_summary = call.summary;
  data.analysis.evaluation_criteria_results = { resolved: { criteria_id: "resolved", result: "success", rationale: call.summary } };
  const results = {
    preferred_name: { value: name, rationale: name === null ? "The caller did not give a name." : `The caller is signed in to the app as ${name}.` },
    ...call.facts,
  };
  data.analysis.data_collection_results = Object.fromEntries(
    Object.entries(results).map(([id, r]) => [id, { data_collection_id: id, value: r.value, rationale: r.rationale }]),
  );
  return event;
}
