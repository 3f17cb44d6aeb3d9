/**
 * What the stand-in for ElevenLabs' API (test/global/elevenlabs-api.ts) serves, as pure functions, so
 * the server (Node) and the tests (workerd) compute the same conversations and the same MP3 bytes.
 * Shapes follow the official SDK's wire types (snake_case): GetConversationsPageResponseModel,
 * GetConversationResponseModel.
 */

export const FAKE_API_KEY = "xi-test-key-never-logged";

/** `n` deterministic pseudo-random bytes (xorshift32), fast enough for tens of MB. */
export function audioBytes(n: number, seed = 0x9e3779b9): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  if (n >= 3) out.set([0x49, 0x44, 0x33]); // "ID3"
  return out;
}

/** A seed from a conversation id (FNV-1a). */
export function seedOf(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193) >>> 0;
  return h || 1;
}

/**
 * Audio of a conversation id: `aud-<bytes>-<rest>` has that many bytes; `die-<bytes>-<rest>` too, but
 * its first request dies halfway; any other id has no audio (404).
 */
export function audioSizeOf(conversationId: string): number | null {
  const m = /^(aud|die)-(\d+)[-_]/.exec(conversationId);
  return m ? Number(m[2]) : null;
}

export const audioOf = (conversationId: string): Uint8Array | null => {
  const size = audioSizeOf(conversationId);
  return size === null ? null : audioBytes(size, seedOf(conversationId));
};

/** Agents the server knows: conversations `<prefix>-c<j>` of users `<prefix>-u<j % users>`. */
export const AGENTS: Record<string, { prefix: string; count: number; users: number; hasAudio?: boolean }> = {
  agent_bulk: { prefix: "bulk", count: 500, users: 50 },
  agent_twin: { prefix: "twin", count: 500, users: 50 },
  agent_small: { prefix: "small", count: 12, users: 3 },
  agent_media: { prefix: "aud-250000-media", count: 3, users: 1, hasAudio: true },
  // test/erasure-ledger.test.ts: one user's calls, imported, erased, imported again.
  agent_erased: { prefix: "aud-1200-era", count: 3, users: 1, hasAudio: true },
  // test/erase-at-source.test.ts: one user's calls, deleted at the stand-in by an erasure.
  agent_deleted: { prefix: "del", count: 3, users: 1 },
};

export const BASE_START = 1_767_225_600; // 2026-01-01T00:00:00Z

export function conversationIdOf(agentId: string, j: number): string {
  return `${AGENTS[agentId]!.prefix}-c${j}`;
}

/** GET /v1/convai/conversations/{id}, for conversations `<prefix>-c<j>` of a known agent. */
export function conversationOf(conversationId: string): Record<string, unknown> | null {
  const m = /^(.*)-c(\d+)$/.exec(conversationId);
  if (!m) return null;
  const entry = Object.entries(AGENTS).find(([, a]) => a.prefix === m[1]);
  if (!entry) return null;
  const [agentId, agent] = entry;
  const j = Number(m[2]);
  if (j >= agent.count) return null;
  const userId = `${agent.prefix}-u${j % agent.users}`;
  const topic = ["billing", "a refund", "the delivery date", "an upgrade", "a password reset"][j % 5]!;
  return {
    agent_id: agentId,
    agent_name: "Support",
    conversation_id: conversationId,
    status: "done",
    user_id: null,
    transcript: [
      { role: "agent", message: "Hello, how can I help?", time_in_call_secs: 0, tool_calls: [], tool_results: [], feedback: null },
      { role: "user", message: `I have a question about ${topic} (${j}).`, time_in_call_secs: 2, tool_calls: [], tool_results: [], feedback: null },
    ],
    metadata: {
      start_time_unix_secs: BASE_START + j * 3600,
      call_duration_secs: 30 + (j % 7) * 10,
      cost: 120,
      termination_reason: "end_call tool was called.",
      main_language: "en",
    },
    analysis: {
      call_successful: j % 9 === 0 ? "failure" : "success",
      transcript_summary: `The user asked about ${topic}. Call ${j}.`,
      call_summary_title: `Question about ${topic}`,
      evaluation_criteria_results: {},
      data_collection_results: { plan: { data_collection_id: "plan", value: j % 2 === 0 ? "pro" : "free", rationale: "said so" } },
    },
    conversation_initiation_client_data: {
      dynamic_variables: { user_id: userId, system__conversation_id: conversationId },
    },
    has_audio: agent.hasAudio === true,
    has_user_audio: agent.hasAudio === true,
    has_response_audio: agent.hasAudio === true,
  };
}

/** One row of the list page (GetConversationsPageResponseModel.conversations). */
export function summaryOf(conversationId: string): Record<string, unknown> {
  const c = conversationOf(conversationId)!;
  const meta = c["metadata"] as Record<string, unknown>;
  return {
    agent_id: c["agent_id"],
    conversation_id: conversationId,
    start_time_unix_secs: meta["start_time_unix_secs"],
    call_duration_secs: meta["call_duration_secs"],
    message_count: 2,
    status: "done",
    call_successful: "success",
  };
}
