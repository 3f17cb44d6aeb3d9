/**
 * The bindings and settings the Worker is deployed with (wrangler.toml, secrets, .dev.vars).
 *
 * `USER_MEMORY` is not typed by its class here on purpose: this file is the ground floor and cannot
 * name the Durable Object class above it. Stubs are typed by the kind of object they reach, in one
 * place (src/memory/objects.ts); `any` lets an env whose namespace is typed by the class (the tests',
 * the bench's) be passed where this one is expected.
 */
export interface Env {
  DB: D1Database;
  AUDIO: R2Bucket;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  USER_MEMORY: DurableObjectNamespace<any>;

  /** One or more webhook signing secrets, comma-separated (several at once during rotation). */
  ELEVENLABS_WEBHOOK_SECRET?: string;
  /** One or more API keys, comma-separated, for `/v1` and the initiation webhook. */
  API_KEY?: string;

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
}
