/** One turn as D1 keeps it and `readConversation` returns it. */
export interface StoredTurn {
  index: number;
  role: string;
  message: string | null;
  time_in_call_secs: number;
  /** JSON text `{calls, results}`, or null. */
  tools: string | null;
  feedback: string | null;
}
