// The counts behind docs/cost-and-capacity.md: postcall run with meters on every storage call
// (bench/workers/instrumented.ts), fed real signed webhooks, then sizes read back from D1, R2 and
// the Durable Objects. Transcription events, context reads and (small) audio events are measured;
// the audio events also give the size of a ConversationLedger holding one audio link.
import { randomBytes } from "node:crypto";
import { applyMigrations, startWorker } from "./workers.mjs";
import { signatureHeader, signedTranscriptions } from "./payloads.mjs";
import { drain } from "./drain.mjs";
import { fmt } from "./stats.mjs";

const API_KEY = "bench-api-key";

async function settle(read) {
  // Alarms finish their last statements after the D1 rows appear: wait until the meters stop moving.
  let last = JSON.stringify(await read());
  for (;;) {
    await new Promise((r) => setTimeout(r, 400));
    const now = JSON.stringify(await read());
    if (now === last) return JSON.parse(now);
    last = now;
  }
}

const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);

/** Audio events measured (each a `post_call_audio` for one of the stored conversations) and their MP3 size. */
const AUDIO_CALLS = 20;
const AUDIO_BYTES = 64 * 1024;

/** A signed post_call_audio event for `conversationId`: random bytes as the MP3 (nothing checks it is one). */
function audioEvent(secret, conversationId) {
  const body = JSON.stringify({
    type: "post_call_audio",
    event_timestamp: Math.floor(Date.now() / 1000),
    data: { agent_id: "agent_bench", conversation_id: conversationId, full_audio: randomBytes(AUDIO_BYTES).toString("base64") },
  });
  return { body, signature: signatureHeader(secret, body) };
}

/** Per-class DO SQL meters (instrumented.ts `doSqlByClass`), per 1,000 of `n`. */
const perClass = (byClass, n) =>
  Object.fromEntries(Object.entries(byClass).map(([cls, c]) => [cls, { statements: (c.statements / n) * 1000, rowsRead: (c.rowsRead / n) * 1000, rowsWritten: (c.rowsWritten / n) * 1000 }]));

export async function runCostModel({ log, secret, minBytes, calls = 400, users = 100 }) {
  const w = await startWorker({ name: "instrumented", entry: "bench/workers/instrumented.ts", bindings: { ELEVENLABS_WEBHOOK_SECRET: secret, API_KEY } });
  try {
    const db = await applyMigrations(w.mf);
    const bucket = await w.mf.getR2Bucket("AUDIO");
    const get = async (path) => (await fetch(`${w.url}${path}`)).json();
    // D1 refuses PRAGMA page_count (SQLITE_AUTH, locally as deployed); every result's meta carries
    // the database size instead (size_after, in bytes: page_count x page_size).
    const d1Bytes = async () => (await db.prepare("SELECT 1").run()).meta.size_after;
    const r2Bytes = async () => {
      let total = 0;
      let cursor;
      do {
        const page = await bucket.list({ cursor });
        for (const o of page.objects) total += o.size;
        cursor = page.truncated ? page.cursor : undefined;
      } while (cursor);
      return total;
    };
    const post = async (req) => {
      const res = await fetch(`${w.url}/webhooks/elevenlabs`, { method: "POST", headers: { "content-type": "application/json", "elevenlabs-signature": req.signature }, body: req.body });
      if (res.status !== 200) throw new Error(`cost run: ${res.status} ${await res.text()}`);
    };

    // 1. Transcriptions: `calls` conversations over `users` users (so most users already have history).
    // Distinct text in every conversation (bench/lib/text.mjs): repeated text would flatter the bytes.
    const pool = signedTranscriptions({ secret, count: calls, users, minBytes, prefix: "cost", distinct: true });
    const d1Before = await d1Bytes();
    await get("/__bench/reset");
    for (let i = 0; i < calls; i += 8) await Promise.all(Array.from({ length: Math.min(8, calls - i) }, (_, k) => post(pool.request(i + k))));
    await drain(db, "conversations", calls, "cost run");
    const ingest = await settle(() => get("/__bench/counters"));
    const d1After = await d1Bytes();
    const r2After = await r2Bytes();

    // 2. Context reads for users with history.
    await get("/__bench/reset");
    for (let i = 0; i < calls; i++) {
      const res = await fetch(`${w.url}/v1/users/${pool.userId(i)}/context`, { headers: { authorization: `Bearer ${API_KEY}` } });
      if (res.status !== 200) throw new Error(`cost run: context ${res.status}`);
      await res.arrayBuffer();
    }
    const context = await settle(() => get("/__bench/counters"));

    // 2b. Audio events for conversations stored above (their users' memories are marked; the link is
    // the ledger's, conversation:<id>), then the size of a ledger that holds one audio link.
    await get("/__bench/reset");
    for (let i = 0; i < AUDIO_CALLS; i++) {
      const ev = audioEvent(secret, pool.conversationId(i));
      const res = await fetch(`${w.url}/webhooks/elevenlabs`, { method: "POST", headers: { "content-type": "application/json", "elevenlabs-signature": ev.signature }, body: ev.body });
      const text = await res.text();
      if (res.status !== 200 || JSON.parse(text).status !== "stored") throw new Error(`cost run: audio ${res.status} ${text}`);
    }
    await drain(db, "audio", AUDIO_CALLS, "cost run (audio)");
    const audio = await settle(() => get("/__bench/counters"));
    const ledgerName = `conversation:${pool.conversationId(0)}`;
    const ledgerBytes = (await get(`/__bench/do-size?name=${encodeURIComponent(ledgerName)}`)).bytes;
    // What an object holds before any of postcall's tables (the runtime's own, and locally miniflare's name table).
    const emptyObjectBytes = (await get(`/__bench/do-size?name=${encodeURIComponent("conversation:cost_never_written")}`)).bytes;

    // 3. One user's Durable Object as it grows (its tables are bounded: docs/storage.md).
    const heavy = signedTranscriptions({ secret, count: 120, users: 1, minBytes, prefix: "heavy" });
    const doSize = async () => (await get(`/__bench/do-size?name=${encodeURIComponent(`user:${heavy.userId(0)}`)}`)).bytes;
    const growth = [];
    let heavyTail = null;
    for (let i = 0; i < heavy.count; i++) {
      // The last 20 calls of a user past every bound (50 recent conversations): what each call reads and writes then.
      if (i === heavy.count - 20) {
        await drain(db, "conversations", calls + i, "cost run (heavy user)");
        await settle(() => get("/__bench/counters"));
        await get("/__bench/reset");
      }
      await post(heavy.request(i));
      if ([1, 10, 50, 120].includes(i + 1)) {
        await drain(db, "conversations", calls + i + 1, "cost run (heavy user)");
        await settle(() => get("/__bench/counters"));
        if (i + 1 === heavy.count) heavyTail = await settle(() => get("/__bench/counters"));
        growth.push({ conversations: i + 1, bytes: await doSize() });
      }
    }
    const typicalUser = (await get(`/__bench/do-size?name=${encodeURIComponent(`user:${pool.userId(0)}`)}`)).bytes;

    const per = (n) => (n / calls) * 1000;
    const measured = {
      calls,
      users,
      payloadBytes: pool.size,
      turns: pool.turns,
      workerRequests: per(ingest.workerRequests),
      doRequests: per(sum(ingest.doRequests)),
      doRequestsByMethod: Object.fromEntries(Object.entries(ingest.doRequests).map(([k, v]) => [k, per(v)])),
      doWallMs: per(ingest.doWallMs),
      doSqlStatements: per(ingest.doSqlStatements),
      doRowsRead: per(ingest.doSqlRowsRead),
      doRowsWritten: per(ingest.doSqlRowsWritten),
      doSetAlarm: per(ingest.doSetAlarm),
      doSqlByClass: perClass(ingest.doSqlByClass, calls),
      d1Batches: per(ingest.d1Batches),
      d1Statements: per(ingest.d1Statements),
      d1RowsRead: per(ingest.d1RowsRead),
      d1RowsWritten: per(ingest.d1RowsWritten),
      d1Unmetered: per(ingest.d1Unmetered ?? 0),
      r2OpsByName: Object.fromEntries(Object.entries({ ...ingest.r2ClassA, ...ingest.r2ClassB }).map(([k, v]) => [k, per(v)])),
      r2ClassA: per(sum(ingest.r2ClassA)),
      r2ClassB: per(sum(ingest.r2ClassB)),
      r2BytesPut: per(ingest.r2BytesPut),
      d1BytesPerConversation: (d1After - d1Before) / calls,
      r2BytesPerConversation: r2After / calls,
      doBytesTypicalUser: typicalUser,
      callsPerTypicalUser: calls / users,
      doGrowth: growth,
      heavyUserPerEvent: { doRowsRead: heavyTail.doSqlRowsRead / 20, doRowsWritten: heavyTail.doSqlRowsWritten / 20, doSqlStatements: heavyTail.doSqlStatements / 20 },
      audio: {
        events: AUDIO_CALLS,
        audioBytes: AUDIO_BYTES,
        doRequestsByMethod: Object.fromEntries(Object.entries(audio.doRequests).map(([k, v]) => [k, (v / AUDIO_CALLS) * 1000])),
        doSqlByClass: perClass(audio.doSqlByClass, AUDIO_CALLS),
        doSetAlarm: (audio.doSetAlarm / AUDIO_CALLS) * 1000,
        d1RowsWritten: (audio.d1RowsWritten / AUDIO_CALLS) * 1000,
        r2ClassA: (sum(audio.r2ClassA) / AUDIO_CALLS) * 1000,
        ledgerBytesWithOneAudioLink: ledgerBytes,
        emptyObjectBytes,
      },
      context: {
        workerRequests: per(context.workerRequests),
        doRequests: per(sum(context.doRequests)),
        doRowsRead: per(context.doSqlRowsRead),
        doRowsWritten: per(context.doSqlRowsWritten),
        d1RowsRead: per(context.d1RowsRead),
        r2ClassB: per(sum(context.r2ClassB)),
      },
    };
    const table = [
      `Measured with ${calls} signed \`post_call_transcription\` events (${pool.size} bytes, ${pool.turns} turns each) over ${users} users, then ${calls} context reads; figures per 1,000.`,
      "",
      "| Per 1,000 | transcription events | context reads |",
      "|---|---:|---:|",
      `| Worker requests | ${fmt(measured.workerRequests, 0)} | ${fmt(measured.context.workerRequests, 0)} |`,
      `| Durable Object requests (${Object.keys(ingest.doRequests).join(", ")}) | ${fmt(measured.doRequests, 0)} | ${fmt(measured.context.doRequests, 0)} |`,
      `| Durable Object SQL statements | ${fmt(measured.doSqlStatements, 0)} | ${fmt(per(context.doSqlStatements), 0)} |`,
      `| Durable Object SQL rows read / written | ${fmt(measured.doRowsRead, 0)} / ${fmt(measured.doRowsWritten, 0)} | ${fmt(measured.context.doRowsRead, 0)} / ${fmt(measured.context.doRowsWritten, 0)} |`,
      ...Object.entries(measured.doSqlByClass).map(
        ([cls, c]) => `| ... of which in ${cls} objects (statements; rows read / written) | ${fmt(c.statements, 0)}; ${fmt(c.rowsRead, 0)} / ${fmt(c.rowsWritten, 0)} | |`,
      ),
      `| ... for a user past every bound (their 101st-120th calls) | ${fmt(measured.heavyUserPerEvent.doRowsRead * 1000, 0)} / ${fmt(measured.heavyUserPerEvent.doRowsWritten * 1000, 0)} | |`,
      `| Durable Object \`setAlarm\` calls (billed as a row written each) | ${fmt(measured.doSetAlarm, 0)} | ${fmt(per(context.doSetAlarm), 0)} |`,
      `| Durable Object wall time in handlers, local (ms) | ${fmt(measured.doWallMs, 0)} | ${fmt(per(context.doWallMs), 0)} |`,
      `| D1 batches / statements | ${fmt(measured.d1Batches, 0)} / ${fmt(measured.d1Statements, 0)} | ${fmt(per(context.d1Batches), 0)} / ${fmt(per(context.d1Statements), 0)} |`,
      `| D1 rows read / written (\`meta\`) | ${fmt(measured.d1RowsRead, 0)} / ${fmt(measured.d1RowsWritten, 0)} | ${fmt(measured.context.d1RowsRead, 0)} / ${fmt(per(context.d1RowsWritten), 0)} |`,
      ...(measured.d1Unmetered > 0 ? [`| D1 \`exec\` calls (no meta: their rows are NOT in the counts above) | ${fmt(measured.d1Unmetered, 0)} | ${fmt(per(context.d1Unmetered ?? 0), 0)} |`] : []),
      `| R2 class A / class B operations | ${fmt(measured.r2ClassA, 0)} / ${fmt(measured.r2ClassB, 0)} | ${fmt(per(sum(context.r2ClassA)), 0)} / ${fmt(measured.context.r2ClassB, 0)} |`,
      `| R2 bytes written | ${fmt(measured.r2BytesPut, 0)} | 0 |`,
      "",
      "| Stored | bytes |",
      "|---|---:|",
      `| D1 per conversation (\`meta.size_after\` before and after) | ${fmt(measured.d1BytesPerConversation, 0)} |`,
      `| R2 per conversation (transcript.json) | ${fmt(measured.r2BytesPerConversation, 0)} |`,
      `| Durable Object of a user with ${calls / users} calls (sql.databaseSize) | ${fmt(typicalUser, 0)} |`,
      ...growth.map((g) => `| Durable Object of a user with ${g.conversations} calls | ${fmt(g.bytes, 0)} |`),
      `| ConversationLedger holding one audio link (sql.databaseSize) | ${fmt(ledgerBytes, 0)} |`,
      `| ... a Durable Object never written to (the runtime's own tables) | ${fmt(emptyObjectBytes, 0)} |`,
      "",
      `Per 1,000 audio events (${AUDIO_CALLS} measured, ${AUDIO_BYTES / 1024} KiB MP3 each, for conversations stored above): Durable Object requests ${Object.entries(measured.audio.doRequestsByMethod).map(([k, v]) => `${k} ${fmt(v, 0)}`).join(", ")}; ` +
        `SQL ${Object.entries(measured.audio.doSqlByClass).map(([cls, c]) => `${cls} ${fmt(c.statements, 0)} statements, ${fmt(c.rowsRead, 0)} / ${fmt(c.rowsWritten, 0)} rows read / written`).join("; ")}; ` +
        `\`setAlarm\` ${fmt(measured.audio.doSetAlarm, 0)}; D1 rows written ${fmt(measured.audio.d1RowsWritten, 0)}; R2 class A ${fmt(measured.audio.r2ClassA, 0)}.`,
    ].join("\n");
    const notes =
      "Counted by bench/workers/instrumented.ts, which runs the service's code unchanged with meters on its bindings: D1 rows from each result's `meta`, " +
      "Durable Object rows from each cursor's `rowsRead`/`rowsWritten`, R2 operations by class, requests per Durable Object method and alarm. " +
      "Local D1 is SQLite in workerd, so `meta` counts what SQLite did; Cloudflare documents that it bills index writes as extra rows written, as counted here when SQLite reports them.";
    log(`cost: per transcription ${fmt(measured.d1RowsWritten / 1000, 1)} D1 rows written, ${fmt(measured.doRowsWritten / 1000, 1)} DO rows written, D1 ${fmt(measured.d1BytesPerConversation, 0)} B/conversation; DO by class ${JSON.stringify(measured.doSqlByClass)}; ledger with one audio link ${fmt(ledgerBytes, 0)} B`);
    return { measured, table, notes };
  } finally {
    await w.dispose();
  }
}
