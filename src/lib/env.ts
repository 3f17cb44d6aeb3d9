/**
 * The bindings and settings the Worker is deployed with (wrangler.toml, secrets, .dev.vars).
 *
 * The bindings come from the types wrangler generates from wrangler.toml (worker-configuration.d.ts,
 * `npm run types`; CI fails when it is stale): each Durable Object namespace is typed by its class,
 * so a stub only offers its class's methods (src/memory/objects.ts). The settings are declared here,
 * as optional strings, because each has a default (src/lib/config.ts validates them once).
 */
type Bindings = Pick<Cloudflare.Env, "DB" | "AUDIO" | "USER_MEMORY" | "CONVERSATION_LEDGER" | "HEALTH_STATS" | "HISTORY_IMPORT">;

export interface Env extends Bindings {
  /** One or more webhook signing secrets, comma-separated (several at once during rotation). */
  ELEVENLABS_WEBHOOK_SECRET?: string;
  /** One or more API keys, comma-separated: full access to `/v1`, the initiation webhook and the tools. */
  API_KEY?: string;
  /**
   * One or more keys, comma-separated, for what ElevenLabs itself calls (the initiation webhook,
   * `GET /v1/users/:id/context`, `/tools/*`), refused everywhere else (src/lib/http/auth.ts).
   */
  AGENT_API_KEY?: string;
  /** ElevenLabs API key(s), sent as `xi-api-key` by the import and audio backfill (first one used). */
  ELEVENLABS_API_KEY?: string;
  /** Standard Webhooks secrets (`whsec_<base64>`), comma-separated, that sign forwarded events. */
  FORWARD_SIGNING_SECRET?: string;
  /**
   * Keys of the erasure ledger's hashes, comma-separated: the first hashes new entries, all match
   * (optional: without it postcall uses a random key it keeps in D1; src/storage/erasures.ts).
   */
  ERASURE_LEDGER_KEY?: string;

  USER_ID_VARIABLE?: string;
  DEFAULT_DYNAMIC_VARIABLES?: string;
  PREVIOUS_TOPICS_MAX_CHARS?: string;
  SIGNATURE_MAX_AGE_SECONDS?: string;
  SIGNATURE_MAX_FUTURE_SECONDS?: string;
  MAX_BODY_BYTES?: string;
  DEFAULT_COUNTRY_CODE?: string;
  /** Whole days to keep conversations, transcripts and audio; unset keeps them forever. */
  RETENTION_DAYS?: string;
  /** Comma-separated IPs / CIDR blocks / `elevenlabs` allowed to call the webhooks; unset = any. */
  ALLOWED_SOURCE_IPS?: string;
  CONTEXT_CACHE_SECONDS?: string;
  /** `verified` (default): memory is written only for a user id vouched for by `postcall_user_token`; `claimed`: any claim. */
  USER_ID_TRUST?: string;
  /** How long after it was issued a `postcall_user_token` covers a conversation's start (seconds). */
  USER_TOKEN_LIFETIME_SECONDS?: string;
  /**
   * The D1 shards' bindings, comma-separated, `DB` first (default "DB": one database). Each named
   * binding is a [[d1_databases]] entry; src/storage/shards.ts places rows by the hash of their id.
   */
  D1_SHARDS?: string;
  /** `user` (default: one memory per user across agents) or `agent` (one per agent and user). */
  MEMORY_SCOPE?: string;
  /** ElevenLabs API base URL (default https://api.elevenlabs.io); tests point it at a local server. */
  ELEVENLABS_API_BASE?: string;
  /** Seconds to wait for an audio webhook before fetching the audio from the API instead. */
  AUDIO_BACKFILL_AFTER_SECONDS?: string;
  /** `auto` (default: backfill when a transcription says `has_audio`), `always` (audio webhooks are on), `off`. */
  AUDIO_BACKFILL?: string;
  /** `true`: an erasure also deletes the user's stored conversations at ElevenLabs (default `false`; needs ELEVENLABS_API_KEY). */
  ERASE_AT_ELEVENLABS?: string;
  /** JSON array of forwarding destinations: `[{ "url", "events": [...], "name"? }]`. */
  FORWARD_DESTINATIONS?: string;
  /** Seconds before the first retry of a failed forward (doubling, with jitter; default 5). */
  FORWARD_RETRY_BASE_SECONDS?: string;
  /** Seconds a destination may take to answer (default 10). */
  FORWARD_TIMEOUT_SECONDS?: string;
  /** Forwarded events waiting for their HTTP delivery (wrangler.toml `queues`; docs/forwarding.md). */
  FORWARD_QUEUE?: Queue;
  /** Deliveries that will never succeed, with their last status and error; consumed into D1 `forward_failures`. */
  FORWARD_DEAD_LETTERS?: Queue;
}
