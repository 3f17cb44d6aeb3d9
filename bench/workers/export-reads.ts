// bench/export.mjs control: the export's D1 reads (the same queries, pages and transcript groups) with
// nothing sent back, to tell what the local D1 simulation costs workerd from what the export does.
import { conversationPageForExport, decodeStoredTranscript, storedTranscriptsOf, transcriptGroups } from "../../src/storage/export";
export default {
  async fetch(req: Request, env: { DB: D1Database }) {
    const userId = new URL(req.url).searchParams.get("user")!;
    let after: { startedAt: number; conversationId: string } | null = null;
    let n = 0;
    for (;;) {
      const page = await conversationPageForExport(env, userId, { limit: 100, after });
      for (const g of transcriptGroups(page, 1_000_000, 50)) {
        for (const value of (await storedTranscriptsOf(env, userId, g.map((r) => r.conversation_id))).values()) n += (await decodeStoredTranscript(value)).length > 0 ? 1 : 0;
      }
      if (page.length < 100) break;
      const last = page[page.length - 1]!;
      after = { startedAt: last.started_at, conversationId: last.conversation_id };
    }
    return new Response(String(n));
  },
};
