// @ts-check
/**
 * postcall operator console: a small single-page app over the public /v1 API, no framework.
 * Routes live in the URL hash (#/users/..., #/conversations/...), so the Worker only serves static
 * files. The API key is kept in sessionStorage: gone when the browser session ends.
 * Every piece of data is inserted as text (never as HTML), so transcripts cannot inject markup.
 */

import { renderHealth } from "./health.js";
import { erasureCard, renderErasure, renderErasures } from "./erasures.js";

const KEY_STORAGE = "postcall.apiKey";
const main = /** @type {HTMLElement} */ (document.getElementById("main"));
const nav = /** @type {HTMLElement} */ (document.getElementById("nav"));

/** @type {string[]} object URLs to revoke when the page changes (the export's download) */
let objectUrls = [];

// ---- tiny DOM helper -------------------------------------------------------------------------

/**
 * @param {string} tag
 * @param {Record<string, string | boolean | ((e: Event) => void) | undefined>} [attrs]
 * @param {...(Node | string | null | undefined | false)} children
 * @returns {HTMLElement}
 */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.replace(/^on/, ""), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return el;
}

/** @param {...(Node | string | null | undefined | false)} children */
function show(...children) {
  for (const url of objectUrls) URL.revokeObjectURL(url);
  objectUrls = [];
  main.replaceChildren(...children.filter((c) => c !== null && c !== undefined && c !== false).map((c) => (typeof c === "string" ? document.createTextNode(c) : /** @type {Node} */ (c))));
}

/** @param {string} text */
const loading = (text = "Loading…") => h("p", { class: "muted", role: "status", "aria-busy": "true" }, text);

/** @param {unknown} err */
function errorBox(err) {
  const message = err instanceof Error ? err.message : String(err);
  return h("div", { class: "card error", role: "alert" }, message);
}

/** @param {string | null | undefined} iso */
function when(iso) {
  if (!iso) return "never";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** "0:19", "3:32", "2:25:07": a time in a call or a call's length. @param {number} secs */
function clock(secs) {
  const s = Math.max(0, Math.floor(secs));
  const mmss = `${String(Math.floor(s / 60) % 60).padStart(s >= 3600 ? 2 : 1, "0")}:${String(s % 60).padStart(2, "0")}`;
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mmss}` : mmss;
}

const userHref = (/** @type {string} */ id) => `#/users/${encodeURIComponent(id)}`;
/** @param {string} id @param {number} [turn] */
const conversationHref = (id, turn) =>
  `#/conversations/${encodeURIComponent(id)}${turn === undefined ? "" : `?turn=${turn}`}`;

// ---- API -------------------------------------------------------------------------------------

class ApiFailure extends Error {
  /** @param {number} status @param {string} code @param {string} message */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const apiKey = () => sessionStorage.getItem(KEY_STORAGE);

/**
 * @param {string} path
 * @param {RequestInit} [init]
 * @returns {Promise<Response>}
 */
async function apiFetch(path, init = {}) {
  const headers = new Headers(init.headers);
  headers.set("Authorization", `Bearer ${apiKey() ?? ""}`);
  let res;
  try {
    res = await fetch(path, { ...init, headers });
  } catch {
    throw new ApiFailure(0, "network", "postcall could not be reached. Check your connection and try again.");
  }
  if (res.status === 401) {
    signOut("Your API key was rejected: it is wrong, or it has been rotated out. Sign in again.");
    throw new ApiFailure(401, "unauthorized", "Signed out.");
  }
  if (!res.ok) {
    /** @type {any} */
    let body = null;
    try {
      body = await res.json();
    } catch {
      /* not JSON */
    }
    throw new ApiFailure(res.status, body?.error?.code ?? "http_error", body?.error?.message ?? `The request failed (HTTP ${res.status}).`);
  }
  return res;
}

/** @param {string} path @param {RequestInit} [init] @returns {Promise<any>} */
const api = async (path, init) => (await apiFetch(path, init)).json();

// ---- sign in / out ---------------------------------------------------------------------------

/** @param {string} [notice] */
function signOut(notice) {
  sessionStorage.removeItem(KEY_STORAGE);
  nav.hidden = true;
  renderSignIn(notice);
}

/** @param {string} [notice] */
function renderSignIn(notice) {
  const input = /** @type {HTMLInputElement} */ (h("input", { id: "api-key", name: "api-key", type: "password", autocomplete: "current-password", required: true }));
  const status = h("p", { role: "status" });
  const form = h(
    "form",
    {
      class: "card",
      onsubmit: async (e) => {
        e.preventDefault();
        const key = input.value.trim();
        if (!key) return;
        status.textContent = "Checking…";
        try {
          const res = await fetch("/v1/users?limit=1", { headers: { Authorization: `Bearer ${key}` } });
          if (res.status === 401) {
            status.textContent = "That API key is not valid.";
            input.focus();
            return;
          }
          if (!res.ok) throw new Error(`postcall answered HTTP ${res.status}.`);
          sessionStorage.setItem(KEY_STORAGE, key);
          nav.hidden = false;
          if (location.hash === "" || location.hash === "#/signin") location.hash = "#/";
          else route();
        } catch (err) {
          status.textContent = err instanceof Error ? err.message : String(err);
        }
      },
    },
    h("label", { for: "api-key" }, "API key"),
    input,
    h("p", { class: "muted" }, "One of the keys in the Worker's API_KEY secret. It is kept for this browser session only."),
    h("button", { type: "submit" }, "Sign in"),
    status,
  );
  show(h("h1", {}, "Sign in"), notice ? h("div", { class: "card error", role: "alert" }, notice) : null, form);
  input.focus();
}

// ---- pages -----------------------------------------------------------------------------------

/**
 * A page's search form: `input` labelled `label`, and on submit the page `hashFor` gives for the
 * trimmed value (the users page, transcript search, erasures).
 * @param {HTMLInputElement} input
 * @param {string} label
 * @param {string} button
 * @param {(value: string) => string} hashFor
 */
function searchForm(input, label, button, hashFor) {
  return h(
    "form",
    {
      class: "row",
      role: "search",
      onsubmit: (/** @type {Event} */ e) => {
        e.preventDefault();
        location.hash = hashFor(input.value.trim());
      },
    },
    h("label", { for: input.id }, label, input),
    h("button", { type: "submit" }, button),
  );
}

/** @param {URLSearchParams} params */
async function renderUsers(params) {
  const q = params.get("q") ?? "";
  const input = /** @type {HTMLInputElement} */ (h("input", { id: "user-q", name: "q", type: "search", value: q, placeholder: "user id or phone number" }));
  const list = h("ul", { class: "list", "aria-label": "Users" });
  const more = h("div");
  const form = searchForm(input, "Find a user", "Search", (v) => `#/users?q=${encodeURIComponent(v)}`);
  show(h("h1", {}, "Users"), form, list, more);

  /** @param {string | null} cursor */
  async function page(cursor) {
    more.replaceChildren(loading());
    try {
      const qs = new URLSearchParams({ limit: "25" });
      if (q) qs.set("q", q);
      if (cursor) qs.set("cursor", cursor);
      const body = await api(`/v1/users?${qs}`);
      for (const u of body.users) {
        list.append(
          h(
            "li",
            { class: "card" },
            h(
              "a",
              { href: userHref(u.user_id) },
              h("span", { class: "title" }, u.user_id),
              h(
                "div",
                { class: "meta" },
                `${u.conversation_count} conversation${u.conversation_count === 1 ? "" : "s"} · last call ${when(u.last_call_at)}`,
                u.matched_phone_number && u.matched_phone_number !== u.user_id ? ` · linked to ${u.matched_phone_number}` : "",
                u.matched_phone_number === u.user_id ? " · this number's own memory" : "",
              ),
            ),
          ),
        );
      }
      if (list.children.length === 0) {
        more.replaceChildren(
          h("p", { class: "card muted" }, q
            ? /\d{7}/.test(q.replace(/\D/g, "")) && !/^\s*(\+|00)/.test(q)
              ? `No user id or phone number matches “${q}”. Typed without its country code, a number finds only numbers that have called on their own; type it with + and the country code (+1 415 555 0123) to find the user it is linked to.`
              : `No user id or phone number matches “${q}”.`
            : "No users yet. Conversations appear here once ElevenLabs sends their post-call webhooks (try npm run send-sample)."),
        );
      } else if (body.next_cursor) {
        more.replaceChildren(h("button", { type: "button", class: "secondary", onclick: () => page(body.next_cursor) }, "Show more users"));
      } else more.replaceChildren();
    } catch (err) {
      more.replaceChildren(errorBox(err));
    }
  }
  await page(null);
}

/** @param {string} snippet */
function highlighted(snippet) {
  // The API marks matches with STX ... ETX; everything else is plain text.
  const out = h("span");
  for (const [i, part] of snippet.split(/[\u0002\u0003]/).entries()) out.append(i % 2 === 1 ? h("mark", {}, part) : part);
  return out;
}

/** @param {URLSearchParams} params */
async function renderSearch(params) {
  const q = params.get("q") ?? "";
  const input = /** @type {HTMLInputElement} */ (h("input", { id: "search-q", name: "q", type: "search", value: q, placeholder: "words said in a call", required: true }));
  const results = h("div");
  show(
    h("h1", {}, "Search transcripts"),
    searchForm(input, "Words", "Search", (v) => `#/search?q=${encodeURIComponent(v)}`),
    results,
  );
  if (!q.trim()) {
    input.focus();
    return;
  }
  results.replaceChildren(loading("Searching…"));
  try {
    const body = await api(`/v1/search?q=${encodeURIComponent(q)}&limit=50`);
    if (body.results.length === 0) {
      results.replaceChildren(h("p", { class: "card muted" }, `Nothing said in any stored call matches “${q}”.`));
      return;
    }
    results.replaceChildren(
      h("p", { class: "muted", role: "status" }, `${body.results.length} matching turn${body.results.length === 1 ? "" : "s"}`),
      h(
        "ul",
        { class: "list", "aria-label": "Matching turns" },
        ...body.results.map((/** @type {any} */ r) =>
          h(
            "li",
            { class: "card" },
            h(
              "a",
              { href: conversationHref(r.conversation_id, r.turn_index) },
              h("span", { class: "title" }, r.title ?? r.conversation_id),
              h("div", { class: "meta" }, `${r.user_id ?? "no user"} · ${when(r.started_at)} · ${r.role} at ${clock(r.time_in_call_secs)}`),
              h("p", {}, highlighted(r.snippet)),
            ),
          ),
        ),
      ),
    );
  } catch (err) {
    results.replaceChildren(errorBox(err));
  }
}

/** @param {unknown} v */
const typeName = (v) => (typeof v === "string" ? "string" : typeof v === "number" ? "number" : typeof v === "boolean" ? "boolean" : "json");

/** A dynamic variable exactly as ElevenLabs receives it (a string as is, anything else as JSON). @param {unknown} v */
const display = (v) => (typeof v === "string" ? (v === "" ? "(empty)" : v) : JSON.stringify(v));

/**
 * A collected fact's value in words: a list as its items, true/false as yes/no, null as not given
 * (["Phone X"] reads "Phone X"). Nested objects stay JSON: there are no words for them.
 * @param {unknown} v @returns {string}
 */
function words(v) {
  if (v === null || v === undefined) return "not given";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "string") return v === "" ? "(empty)" : v;
  if (typeof v !== "object") return String(v);
  const part = (/** @type {unknown} */ x) => (x !== null && typeof x === "object" ? JSON.stringify(x) : words(x));
  if (Array.isArray(v)) return v.length === 0 ? "none" : v.map(part).join(", ");
  return Object.entries(v).map(([k, x]) => `${k}: ${part(x)}`).join("; ");
}

/** Why a claimed user id was not believed (src/records/identity.ts UnverifiedReason), in words. */
const UNVERIFIED = /** @type {Record<string, string>} */ ({
  token_missing: "no postcall_user_token came with the call",
  token_malformed: "its postcall_user_token is malformed",
  token_bad_signature: "its postcall_user_token's signature does not match (forged, or signed with a secret no longer configured)",
  token_no_key: "no secret is configured to check its postcall_user_token",
  token_other_user: "its postcall_user_token was issued for another user",
  token_expired: "its postcall_user_token had expired when the call started",
  reserved_user_id: "the id is reserved",
  phone_number_claim: "a phone number claimed as a user id needs a postcall_user_token or telephony to vouch for it",
});
const unverifiedWords = (/** @type {string} */ code) => UNVERIFIED[code] ?? code;

/** Who vouched for a conversation's owner (VouchedBy), in words. */
const VOUCHED = /** @type {Record<string, string>} */ ({
  token: "a valid postcall_user_token",
  telephony: "the phone call itself (caller id)",
  operator: "an operator (an attribution or an import)",
  claimed: "its claim alone (USER_ID_TRUST=claimed)",
});

/** A user id that is itself a phone number (E.164): the memory of calls from that number. */
const isPhoneNumber = (/** @type {string} */ id) => /^\+[1-9]\d{6,14}$/.test(id);

/**
 * What ElevenLabs receives for this id's next conversation. For an app user: their context. For a
 * phone number: the initiation webhook's answer (GET /v1/phones/:n/initiation), which is the linked
 * app user's memory when the number is linked, not the number's own. With `agentId`
 * (MEMORY_SCOPE=agent): that agent's.
 * @param {string} userId @param {string | null} [agentId]
 */
function nextCallVariables(userId, agentId = null) {
  const scope = agentId ? `?agent_id=${encodeURIComponent(agentId)}` : "";
  return isPhoneNumber(userId)
    ? api(`/v1/phones/${encodeURIComponent(userId)}/initiation${scope}`)
    : api(`/v1/users/${encodeURIComponent(userId)}/context${scope}`);
}

/**
 * The link to one agent's memory of a user (MEMORY_SCOPE=agent: GET /v1/users/:id/memory?agent_id=).
 * @param {string} userId @param {string} agentId
 */
const scopedUserHref = (userId, agentId) => `${userHref(userId)}?agent_id=${encodeURIComponent(agentId)}`;

/**
 * The newest erasure of this user id, if any (GET /v1/erasures?user_id=: the id is hashed, never stored).
 * @param {string} userId
 */
async function lastErasureOf(userId) {
  const body = await api(`/v1/erasures?user_id=${encodeURIComponent(userId)}&limit=1`).catch(() => null);
  return body?.erasures?.[0] ?? null;
}

/**
 * A fact's earlier values (GET /v1/users/:id/memory `history`, newest first), each with when it
 * held and the call that set it; nothing when the value never changed.
 * @param {any} f
 */
function factHistory(f) {
  const history = f.history ?? [];
  if (history.length === 0) return null;
  return h(
    "details",
    { class: "history" },
    h("summary", {}, `${history.length} earlier value${history.length === 1 ? "" : "s"}`),
    h(
      "ul",
      { "aria-label": `Earlier values of ${f.id}` },
      ...history.map((/** @type {any} */ x) =>
        h("li", {}, words(x.value), h("span", { class: "meta" }, " · ", x.conversation_id ? h("a", { href: conversationHref(x.conversation_id) }, `${when(x.valid_from)} – ${when(x.valid_to)}`) : `${when(x.valid_from)} – ${when(x.valid_to)}`)),
      ),
    ),
  );
}

/**
 * A user's page; with `?agent_id=` (MEMORY_SCOPE=agent), what that one agent remembers of them.
 * @param {string} userId @param {URLSearchParams} [params]
 */
async function renderUser(userId, params = new URLSearchParams()) {
  show(h("h1", {}, userId), loading());
  const phone = isPhoneNumber(userId);
  const agentId = params.get("agent_id") || null;
  const scope = agentId ? `?agent_id=${encodeURIComponent(agentId)}` : "";
  /** @param {string} path */
  const orNull = (path) =>
    api(path).catch((err) => {
      if (err instanceof ApiFailure && err.status === 404) return null;
      throw err;
    });
  const [context, memory, whole] = await Promise.all([
    nextCallVariables(userId, agentId),
    orNull(`/v1/users/${encodeURIComponent(userId)}/memory${scope}`),
    // One agent's view: the list of agents comes from the user's own memory, which names them.
    agentId ? orNull(`/v1/users/${encodeURIComponent(userId)}/memory`) : null,
  ]);
  // No memory at all: say so plainly if it is because the user was erased (and link the record).
  const erasure = memory === null && agentId === null ? await lastErasureOf(userId) : null;

  const linkedTo = memory?.linked_to?.user_id ?? (phone ? (context.user_id ?? null) : null);
  const vars = Object.entries(context.dynamic_variables);
  const variables = h(
    "section",
    { class: "card", "aria-labelledby": "vars-h", id: "next-call" },
    h("h2", { id: "vars-h" }, phone ? "When this number calls: dynamic variables" : "Next call: dynamic variables"),
    !phone
      ? h("p", { class: "muted" }, "Exactly what ElevenLabs receives for this user's next conversation.")
      : linkedTo
        ? h("p", { class: "muted" }, "Exactly what ElevenLabs receives while this number rings (the initiation webhook's answer): the memory of ", h("a", { href: userHref(linkedTo) }, linkedTo), ", to whom the number is linked. The calls listed below stay with the number.")
        : h("p", { class: "muted" }, "Exactly what ElevenLabs receives while this number rings (the initiation webhook's answer): this number's own memory, as it is linked to no app user."),
    h("dl", { class: "vars" }, ...vars.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, display(v), h("span", { class: "type" }, typeName(v)))])),
  );
  const facts = h(
    "section",
    { class: "card", "aria-labelledby": "facts-h" },
    h("h2", { id: "facts-h" }, "Facts"),
    memory && memory.facts.length > 0
      ? h(
          "dl",
          { class: "vars" },
          ...memory.facts.flatMap((/** @type {any} */ f) => [
            h("dt", {}, f.id),
            h("dd", {}, words(f.value), h("div", { class: "meta" }, "from ", h("a", { href: conversationHref(f.conversation_id) }, when(f.collected_at))), factHistory(f)),
          ]),
        )
      : h("p", { class: "muted" }, "No facts collected yet."),
  );

  const scopes = (agentId ? whole : memory)?.scopes ?? [];
  const scopesCard = h(
    "section",
    { class: "card", "aria-labelledby": "scopes-h" },
    h("h2", { id: "scopes-h" }, "Memory scopes"),
    scopes.length > 0
      ? h(
          "div",
          {},
          h("p", { class: "muted" }, `With MEMORY_SCOPE=agent each agent keeps its own memory of ${userId}: ${scopes.length} do. Open one to see what that agent remembers (GET /v1/users/${userId}/memory?agent_id=…).`),
          h(
            "ul",
            { "aria-label": "Agents with a memory of this user" },
            ...scopes.map((/** @type {string} */ a) => h("li", {}, h("a", { href: scopedUserHref(userId, a), class: "mono", "aria-current": a === agentId ? "page" : undefined }, a))),
          ),
        )
      : h("p", { class: "muted" }, "One memory for every agent: no agent keeps a memory of its own for this id (MEMORY_SCOPE=user, or no agent-scoped call yet)."),
  );

  const phones = h("section", { class: "card", "aria-labelledby": "phones-h" }, h("h2", { id: "phones-h" }, phone ? "Link" : "Phone numbers"));
  if (phone) {
    const link = memory?.linked_to;
    phones.append(
      linkedTo
        ? h(
            "p",
            { id: "phone-link" },
            "Linked to ",
            h("a", { href: userHref(linkedTo) }, linkedTo),
            link ? ` since ${when(link.linked_at)} (${link.via === "api" ? "through the API" : "by a call"})` : "",
            ": calls from this number are remembered for them.",
          )
        : h("p", { class: "muted", id: "phone-link" }, "Linked to no app user: calls from this number are remembered under the number."),
    );
  } else {
    const phoneList = memory?.phone_numbers ?? [];
    phones.append(
      phoneList.length > 0
        ? h("ul", {}, ...phoneList.map((/** @type {any} */ p) => h("li", {}, h("a", { href: userHref(p.phone_number), class: "mono" }, p.phone_number), h("span", { class: "meta" }, ` linked ${when(p.linked_at)} ${p.via === "api" ? "through the API" : "by a call"}`))))
        : h("p", { class: "muted" }, "No phone numbers linked."),
    );
  }

  const timeline = h("ol", { class: "list", "aria-label": "Conversations" });
  const more = h("div");
  const history = h("section", { "aria-labelledby": "timeline-h" }, h("h2", { id: "timeline-h" }, "Conversations"), timeline, more);

  /** @param {string | null} cursor */
  async function page(cursor) {
    more.replaceChildren(loading());
    try {
      const qs = new URLSearchParams({ limit: "20" });
      if (cursor) qs.set("cursor", cursor);
      const body = await api(`/v1/users/${encodeURIComponent(userId)}/conversations?${qs}`);
      for (const c of body.conversations) {
        timeline.append(
          h(
            "li",
            { class: "card" },
            h(
              "a",
              { href: conversationHref(c.conversation_id) },
              h("span", { class: "title" }, c.title ?? "(untitled call)"),
              h(
                "div",
                { class: "meta" },
                `${when(c.started_at)} · ${clock(c.duration_secs)} · ${c.turn_count} turns${c.has_audio ? " · audio" : ""}`,
                c.call_successful ? h("span", { class: `pill ${c.call_successful}` }, c.call_successful) : null,
              ),
              c.summary ? h("p", {}, c.summary) : null,
            ),
          ),
        );
      }
      if (timeline.children.length === 0) more.replaceChildren(h("p", { class: "card muted" }, "No conversations stored for this user."));
      else if (body.next_cursor) more.replaceChildren(h("button", { type: "button", class: "secondary", onclick: () => page(body.next_cursor) }, "Show older conversations"));
      else more.replaceChildren();
    } catch (err) {
      more.replaceChildren(errorBox(err));
    }
  }

  const dialog = /** @type {HTMLDialogElement} */ (
    h(
      "dialog",
      { "aria-labelledby": "delete-h" },
      h(
        "form",
        { method: "dialog" },
        h("h2", { id: "delete-h" }, `Delete ${userId}?`),
        h("p", {}, "This erases the user's memory, every stored conversation, transcript and recording, and their phone links. It cannot be undone."),
        h("div", { class: "row" }, h("button", { value: "cancel", class: "secondary", autofocus: true }, "Cancel"), h("button", { value: "delete", class: "danger", id: "confirm-delete" }, "Delete everything")),
      ),
    )
  );
  const deleteStatus = h("p", { role: "status" });
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "delete") return;
    deleteStatus.textContent = "Deleting…";
    try {
      const res = await api(`/v1/users/${encodeURIComponent(userId)}`, { method: "DELETE" });
      const d = res.deleted ?? {};
      const total = Object.values(d).reduce((/** @type {number} */ n, /** @type {any} */ v) => n + (typeof v === "number" ? v : 0), 0);
      // The erasure's record (GET /v1/erasures/:id): what was removed where, and its state at ElevenLabs.
      const record = res.erasure_id ? await api(`/v1/erasures/${encodeURIComponent(res.erasure_id)}`).catch(() => null) : null;
      show(
        h("h1", {}, `${userId} was deleted`),
        h("p", { class: "card", role: "status" }, `${total} stored items were erased.`),
        record ? erasureCard({ h, show, api, loading, when }, record) : null,
        h("p", {}, record ? h("a", { href: `#/erasures/${encodeURIComponent(record.erasure_id)}` }, "This erasure's record") : null, " ", h("a", { href: "#/erasures" }, "All erasures"), " ", h("a", { href: "#/" }, "Back to users")),
      );
      main.focus();
    } catch (err) {
      deleteStatus.replaceChildren(errorBox(err));
    }
  });

  const calls = memory ? `${memory.profile.call_count} call${memory.profile.call_count === 1 ? "" : "s"} · last ${when(memory.profile.last_call_at)}` : "";
  const summary = !memory
    ? agentId
      ? `Agent ${agentId} holds no memory of this user.`
      : phone
        ? "No memory of its own: no call from this number was remembered under the number."
        : "No memory yet: this user has not had a conversation postcall received."
    : phone
      ? `This number's own memory: ${calls}`
      : calls;
  show(
    h("h1", {}, userId),
    agentId
      ? h("p", { id: "scope-note" }, "As agent ", h("span", { class: "mono" }, agentId), " remembers them (MEMORY_SCOPE=agent): its own facts, summary and dynamic variables. ", h("a", { href: userHref(userId) }, `Every agent's view of ${userId}`))
      : null,
    erasure
      ? h(
          "p",
          { class: "card", id: "erased-note" },
          `Erased ${when(erasure.began_at)}: everything postcall held for this id was deleted, and the erasure ledger keeps those conversations from coming back. `,
          h("a", { href: `#/erasures/${encodeURIComponent(erasure.erasure_id)}` }, "The erasure's record"),
        )
      : null,
    h("p", { class: "muted" }, summary),
    h("div", { class: "grid2" }, variables, h("div", {}, facts, h("div", { class: "spacer" }), phones, h("div", { class: "spacer" }), scopesCard)),
    history,
    exportSection(userId),
    h("section", { "aria-labelledby": "danger-h" }, h("h2", { id: "danger-h" }, "Erase"), h("button", { type: "button", class: "danger", id: "delete-user", onclick: () => dialog.showModal() }, "Delete this user…"), deleteStatus),
    dialog,
  );
  await page(null);
}

/**
 * "Download everything": GET /v1/users/:id/export (NDJSON) fetched with the key (a plain link cannot
 * send it), saved under the name the Worker gives. The file is built in the browser's memory: for a
 * user with very many recordings, leave recordings out, or use curl (README, "Export").
 * @param {string} userId
 */
function exportSection(userId) {
  const inline = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox", id: "export-inline" }));
  const status = h("p", { role: "status", class: "meta", id: "export-status" });
  const button = /** @type {HTMLButtonElement} */ (
    h(
      "button",
      {
        type: "button",
        class: "secondary",
        id: "export-user",
        onclick: async () => {
          button.disabled = true;
          status.textContent = "Preparing the export…";
          try {
            const res = await apiFetch(`/v1/users/${encodeURIComponent(userId)}/export${inline.checked ? "?audio=inline" : ""}`);
            const name = /filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") ?? "")?.[1] ?? "postcall-export.ndjson";
            const blob = await res.blob();
            const url = URL.createObjectURL(blob);
            objectUrls.push(url);
            const a = h("a", { href: url, download: name, hidden: true });
            document.body.append(a);
            a.click();
            a.remove();
            status.textContent = `Saved ${name} (${(blob.size / 1024).toFixed(0)} KB).`;
          } catch (err) {
            status.replaceChildren(errorBox(err));
          } finally {
            button.disabled = false;
          }
        },
      },
      "Download export (NDJSON)",
    )
  );
  return h(
    "section",
    { "aria-labelledby": "export-h" },
    h("h2", { id: "export-h" }, "Export"),
    h("p", { class: "muted" }, "Everything postcall holds about this user, one JSON record per line: memory, facts, phone links, every conversation with its transcript, and recordings."),
    h("div", { class: "export" }, button, h("label", { for: "export-inline" }, inline, " include recordings in the file (base64), not as links")),
    status,
  );
}

/** @param {any} tools */
function toolNames(tools) {
  const names = [...new Set((tools.calls ?? []).map((/** @type {any} */ c) => c?.tool_name).filter((/** @type {unknown} */ n) => typeof n === "string"))];
  return names.length > 0 ? `: ${names.join(", ")}` : "";
}

/** @param {any} turn @param {boolean} target */
function turnView(turn, target) {
  const tools = turn.tools && (turn.tools.calls?.length || turn.tools.results?.length) ? turn.tools : null;
  return h(
    "li",
    { class: `turn ${turn.role === "user" ? "user" : "agent"}${target ? " target" : ""}`, id: `turn-${turn.index}`, tabindex: target ? "-1" : undefined },
    h("div", { class: "who" }, h("strong", {}, turn.role), h("span", {}, clock(turn.time_in_call_secs)), turn.feedback ? h("span", { class: "feedback" }, turn.feedback === "like" ? "the caller liked this reply" : "the caller disliked this reply") : null),
    turn.message !== null ? h("p", {}, turn.message) : h("p", { class: "muted" }, "Nothing transcribed: the speaker was cut off or said nothing."),
    tools
      ? h(
          "details",
          {},
          h("summary", {}, `Tool calls (${tools.calls?.length ?? 0})${toolNames(tools)}`),
          h("pre", {}, JSON.stringify(tools, null, 2)),
        )
      : null,
  );
}

/** @param {number} bytes */
function size(bytes) {
  return bytes < 1024 * 1024 ? `${Math.max(1, Math.round(bytes / 1024))} KB` : `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/**
 * Whether the recording at `url` starts like an MP3: an MPEG audio frame (11 set sync bits), at
 * once or after a well-formed ID3v2 tag. Two small Range reads.
 * @param {string} url
 * @returns {Promise<boolean>}
 */
async function startsLikeMp3(url) {
  /** @param {number} from @param {number} n */
  const read = async (from, n) => new Uint8Array(await (await fetch(url, { headers: { Range: `bytes=${from}-${from + n - 1}` } })).arrayBuffer());
  const sync = (/** @type {Uint8Array} */ b) => b[0] === 0xff && ((b[1] ?? 0) & 0xe0) === 0xe0;
  const head = await read(0, 10);
  if (sync(head)) return true;
  const id3 = head[0] === 0x49 && head[1] === 0x44 && head[2] === 0x33 && head.slice(6, 10).every((x) => x < 0x80);
  if (!id3) return false;
  const tag = 10 + (head[6] << 21) + (head[7] << 14) + (head[8] << 7) + head[9];
  return sync(await read(tag, 2));
}

/**
 * The recording card. `<audio>` cannot send an Authorization header, so the console asks for a signed
 * link (POST .../audio/link, good for one conversation for 15 minutes) and gives the player that URL:
 * it streams and seeks with Range requests, and nothing is held in memory. When a seek fails because
 * the link has expired, a new one is fetched and playback resumes where it was.
 * @param {string} conversationId @param {boolean} hasAudio
 */
function recordingCard(conversationId, hasAudio) {
  const player = h("section", { class: "card", "aria-labelledby": "audio-h" }, h("h2", { id: "audio-h" }, "Recording"));
  if (!hasAudio) {
    player.append(h("p", { class: "muted" }, "No recording stored for this call."));
    return player;
  }
  const audio = /** @type {HTMLAudioElement} */ (h("audio", { controls: true, preload: "metadata", id: "player" }));
  const status = h("p", { class: "meta", role: "status", id: "audio-status" }, "Loading the recording…");
  const download = /** @type {HTMLAnchorElement} */ (h("a", { id: "audio-download", download: `${conversationId}.mp3`, hidden: true }, "Download the file"));
  player.append(audio, status, download);
  let stored = "";
  let bytes = "";
  let renewals = 0;

  /** @param {number} [resumeAt] */
  async function load(resumeAt) {
    const link = await api(`/v1/conversations/${encodeURIComponent(conversationId)}/audio/link`, { method: "POST" });
    bytes = size(link.bytes);
    stored = `${bytes} MP3`;
    if (resumeAt) audio.addEventListener("loadedmetadata", () => (audio.currentTime = resumeAt), { once: true });
    audio.src = link.url;
    download.href = link.url;
    download.hidden = false;
    status.textContent = stored;
  }

  audio.addEventListener("loadedmetadata", () => {
    if (Number.isFinite(audio.duration)) status.textContent = `${clock(audio.duration)} · ${stored}`;
  });
  audio.addEventListener("error", async () => {
    // Ask the server what went wrong: an expired link (401) is renewed; bytes that are not MP3 are said to be.
    const at = audio.currentTime;
    try {
      const res = await fetch(audio.src, { headers: { Range: "bytes=0-0" } });
      if (res.status === 401 && renewals < 3) {
        renewals++;
        return await load(at);
      }
      if (!res.ok) throw new ApiFailure(res.status, "http_error", res.status === 404 ? "The recording is no longer stored (it was erased, or expired under RETENTION_DAYS)." : `The recording could not be read (HTTP ${res.status}).`);
      await res.body?.cancel();
      status.textContent = (await startsLikeMp3(audio.src))
        ? `This browser could not play the recording (${stored}). Download the file to play it elsewhere.`
        : `This recording is not a playable MP3 (${bytes} stored; it does not start like an MP3 file). Download the file to look at it.`;
      status.classList.add("error-text");
      audio.hidden = true;
    } catch (err) {
      player.append(errorBox(err));
    }
  });
  load().catch((err) => player.append(errorBox(err)));
  return player;
}

/**
 * A conversation D1 does not have (yet). The audio webhook can arrive before the transcription, or
 * alone: if a recording is stored, show it and say what is missing instead of failing.
 * @param {string} conversationId
 */
async function renderConversationWithoutTranscript(conversationId) {
  const probe = await apiFetch(`/v1/conversations/${encodeURIComponent(conversationId)}/audio`, { headers: { Range: "bytes=0-0" } }).catch((err) => {
    if (err instanceof ApiFailure && err.status === 404) return null;
    throw err;
  });
  await probe?.body?.cancel();
  if (probe === null) {
    show(
      h("h1", {}, conversationId),
      h("p", { class: "card muted", role: "status" }, "postcall has nothing stored for this conversation: no transcript and no recording. It may not have been delivered yet, or it was erased."),
      h("p", {}, h("a", { href: "#/" }, "Back to users")),
    );
    return;
  }
  show(
    h("h1", {}, conversationId),
    h(
      "p",
      { class: "card", role: "status", id: "transcript-pending" },
      "The recording has arrived, the transcript has not (yet). ElevenLabs sends them as separate webhooks; the transcript usually follows within seconds. Until it does, postcall does not know whose call this is, when it took place or what was said.",
    ),
    h("div", { class: "grid2" }, recordingCard(conversationId, true), h("section", { class: "card", "aria-labelledby": "analysis-h" }, h("h2", { id: "analysis-h" }, "Analysis"), h("p", { class: "muted" }, "Comes with the transcript."))),
    h("p", {}, h("button", { type: "button", class: "secondary", onclick: () => route() }, "Check again")),
  );
}

/** @param {string} conversationId @param {URLSearchParams} params */
async function renderConversation(conversationId, params) {
  show(h("h1", {}, conversationId), loading());
  const c = await api(`/v1/conversations/${encodeURIComponent(conversationId)}`).catch((err) => {
    if (err instanceof ApiFailure && err.code === "conversation_not_found") return null;
    throw err;
  });
  if (c === null) return renderConversationWithoutTranscript(conversationId);
  const targetTurn = params.has("turn") ? Number(params.get("turn")) : null;
  const player = recordingCard(conversationId, c.has_audio);

  const analysis = c.analysis ?? {};
  const evaluation = Object.entries(analysis.evaluation ?? {});
  const collected = Object.entries(analysis.data_collection ?? {});
  const details = h(
    "section",
    { class: "card", "aria-labelledby": "analysis-h" },
    h("h2", { id: "analysis-h" }, "Analysis"),
    c.summary ? h("p", {}, c.summary) : h("p", { class: "muted" }, "No summary."),
    h(
      "dl",
      { class: "vars" },
      h("dt", {}, "outcome"),
      h("dd", {}, c.call_successful ?? "unknown"),
      ...evaluation.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, /** @type {any} */ (v)?.result ?? "", h("div", { class: "meta" }, /** @type {any} */ (v)?.rationale ?? ""))]),
      ...collected.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, words(v))]),
    ),
  );

  const transcript = h("ol", { class: "dialogue", "aria-label": "Transcript" }, ...c.transcript.map((/** @type {any} */ t) => turnView(t, t.index === targetTurn)));

  show(
    h("h1", {}, c.title ?? "(untitled call)"),
    h(
      "p",
      { class: "muted" },
      c.user_id ? h("a", { href: userHref(c.user_id) }, c.user_id) : "no user",
      ` · ${when(c.started_at)} · ${clock(c.duration_secs)}${c.agent_name ? ` · ${c.agent_name}` : ""}`,
      c.phone ? ` · ${c.phone.direction ?? ""} ${c.phone.number}` : "",
    ),
    h("div", { class: "grid2" }, player, details),
    ownershipView(c),
    h("h2", {}, "Transcript"),
    c.transcript.length > 0 ? transcript : h("p", { class: "card muted" }, "This conversation has no transcript turns."),
  );
  if (targetTurn !== null) {
    const el = document.getElementById(`turn-${targetTurn}`);
    el?.scrollIntoView({ block: "center" });
    el?.focus();
  }
}

// ---- forwarding failures -----------------------------------------------------------------------

/**
 * Forwarded events a destination refused for good (a 4xx) or that ran out of retries: the dead letters
 * of GET /v1/forwarding/failures. "Retry" queues one again (POST .../retry); once delivered it leaves the list.
 */
async function renderForwardingFailures() {
  const list = h("ul", { class: "list", "aria-label": "Forwarding failures" });
  const more = h("div");
  show(
    h("h1", {}, "Forwarding failures"),
    h("p", { class: "muted" }, "Events that could not be delivered to a destination in FORWARD_DESTINATIONS, newest first."),
    list,
    more,
  );

  /** @param {any} f */
  function item(f) {
    const status = h("p", { role: "status", class: "muted" });
    const button = /** @type {HTMLButtonElement} */ (
      h(
        "button",
        {
          type: "button",
          onclick: async () => {
            button.disabled = true;
            status.textContent = "Queueing…";
            try {
              const r = await api(`/v1/forwarding/failures/${encodeURIComponent(f.id)}/retry`, { method: "POST" });
              status.textContent = `Queued again ${when(r.retried_at)}: it leaves this list once the destination accepts it.`;
            } catch (err) {
              button.disabled = false;
              status.textContent = err instanceof Error ? err.message : String(err);
            }
          },
        },
        "Retry",
      )
    );
    // A call failure has no conversation page; a user.erased has only its user.
    const about =
      f.conversation_id && f.type !== "call.failed" ? h("a", { href: conversationHref(f.conversation_id) }, f.conversation_id) : (f.conversation_id ?? f.user_id ?? "");
    return h(
      "li",
      { class: "card" },
      h("span", { class: "title" }, `${f.type} → ${f.destination}`),
      h("div", { class: "meta" }, about, ` · ${f.last_status === null ? "no answer" : `HTTP ${f.last_status}`} · ${f.attempts} attempt${f.attempts === 1 ? "" : "s"} · last ${when(f.last_failed_at)}`, f.retried_at ? ` · retried ${when(f.retried_at)}` : ""),
      h("p", {}, f.last_error),
      button,
      status,
    );
  }

  /** @param {string | null} cursor */
  async function page(cursor) {
    more.replaceChildren(loading());
    try {
      const qs = new URLSearchParams({ limit: "25" });
      if (cursor) qs.set("cursor", cursor);
      const body = await api(`/v1/forwarding/failures?${qs}`);
      for (const f of body.failures) list.append(item(f));
      if (list.children.length === 0)
        more.replaceChildren(
          h("p", { class: "card muted", id: "forwarding-empty" }, body.destinations === 0
            ? "Forwarding is off: FORWARD_DESTINATIONS names no destination, so nothing is forwarded and nothing can fail (docs/forwarding.md in the repository says how to turn it on)."
            : `No failed deliveries: every event forwarded to the ${body.destinations} destination${body.destinations === 1 ? "" : "s"} in FORWARD_DESTINATIONS was accepted, or is still being retried.`),
        );
      else if (body.next_cursor) more.replaceChildren(h("button", { type: "button", class: "secondary", onclick: () => page(body.next_cursor) }, "Show more"));
      else more.replaceChildren();
    } catch (err) {
      more.replaceChildren(errorBox(err));
    }
  }
  await page(null);
}

/**
 * Conversations no one owns: a user id claimed without a valid postcall_user_token, or no user at
 * all. Each opens its conversation, where an operator can attribute it.
 * @param {URLSearchParams} _params
 */
async function renderUnattributed(_params) {
  const list = h("ul", { class: "list", "aria-label": "Unattributed conversations" });
  const more = h("div");
  show(
    h("h1", {}, "Unattributed conversations"),
    h("p", { class: "muted" }, "Stored, but in no one's memory: the user id they claimed came without a valid postcall_user_token, or they named no one."),
    list,
    more,
  );
  /** @param {string | null} cursor */
  async function page(cursor) {
    more.replaceChildren(loading());
    try {
      const qs = new URLSearchParams({ unattributed: "true", limit: "25" });
      if (cursor) qs.set("cursor", cursor);
      const body = await api(`/v1/conversations?${qs}`);
      for (const c of body.conversations) {
        const claim = c.claimed_user_id ? `claims ${c.claimed_user_id}, not believed: ${unverifiedWords(c.unverified_reason)}` : "no user claimed";
        list.append(
          h(
            "li",
            { class: "card" },
            h("a", { href: `#/conversations/${encodeURIComponent(c.conversation_id)}` }, h("span", { class: "title" }, c.title ?? "(untitled call)"), h("div", { class: "meta" }, `${claim} · ${when(c.started_at)}`)),
          ),
        );
      }
      if (list.children.length === 0) more.replaceChildren(h("p", { class: "card muted" }, "None: every stored conversation has an owner."));
      else if (body.next_cursor) more.replaceChildren(h("button", { type: "button", class: "secondary", onclick: () => page(body.next_cursor) }, "Show more"));
      else more.replaceChildren();
    } catch (err) {
      more.replaceChildren(errorBox(err));
    }
  }
  await page(null);
}

/**
 * Who vouched for the owner, an unverified claim, conflicts kept aside, and for a conversation no
 * one owns the operator's attribution form.
 * @param {any} c
 */
function ownershipView(c) {
  const section = h("section", { class: "card owner", "aria-labelledby": "owner-h" }, h("h2", { id: "owner-h" }, "Owner"));
  section.append(
    h("p", {}, c.user_id ? `${c.user_id}, vouched for by ${c.vouched_by ? (VOUCHED[c.vouched_by] ?? c.vouched_by) : "nothing: it was recorded before postcall checked owners"}.` : "No one: this conversation is in no one's memory."),
  );
  if (c.claimed_user_id) section.append(h("p", { class: "meta" }, `Claimed user id ${c.claimed_user_id}, not believed: ${unverifiedWords(c.unverified_reason)}.`));
  if (c.conflicts?.count > 0) section.append(h("p", { class: "meta" }, `${c.conflicts.count} later event(s) for this id under another owner were kept aside.`));
  if (c.user_id) return section;
  const input = /** @type {HTMLInputElement} */ (h("input", { id: "attribute-user", name: "user_id", value: c.claimed_user_id ?? "", required: true }));
  const status = h("p", { role: "status" });
  section.append(
    h(
      "form",
      {
        class: "row",
        onsubmit: async (/** @type {Event} */ e) => {
          e.preventDefault();
          status.replaceChildren(loading());
          try {
            const body = await api(`/v1/conversations/${encodeURIComponent(c.conversation_id)}/attribute`, {
              method: "POST",
              headers: { "Content-Type": "application/json" },
              body: JSON.stringify({ user_id: input.value.trim() }),
            });
            status.replaceChildren(`Attributed to ${body.user_id}: it is in their memory now.`);
          } catch (err) {
            status.replaceChildren(errorBox(err));
          }
        },
      },
      h("label", { for: "attribute-user" }, "Attribute to user", input),
      h("button", { type: "submit" }, "Attribute"),
    ),
    status,
  );
  return section;
}

// ---- history imports (POST /v1/imports runs them; this lists them) ----------------------------

async function renderImports() {
  const list = h("ul", { class: "list", "aria-label": "Imports" });
  show(
    h("h1", {}, "Imports"),
    h("p", { class: "muted" }, "History imports from ElevenLabs' API, newest first. Start one with POST /v1/imports."),
    list,
  );
  const body = await api("/v1/imports");
  const noKey = body.elevenlabs_api_key_set === false
    ? h("p", { class: "card error", role: "status", id: "imports-no-key" }, "ELEVENLABS_API_KEY is not set: an import cannot fetch anything from ElevenLabs, and recordings that never arrived cannot be fetched either. Set it with npx wrangler secret put ELEVENLABS_API_KEY (locally: in .dev.vars).")
    : null;
  if (noKey) list.before(noKey);
  if (body.imports.length === 0) list.replaceWith(h("p", { class: "card muted", id: "imports-empty" }, noKey ? "No imports yet." : "No imports yet. Start one with POST /v1/imports (README, History import)."));
  for (const i of body.imports) {
    list.append(
      h(
        "li",
        { class: "card" },
        h("span", { class: "title" }, `${i.agent_id} · ${i.status}`),
        h(
          "div",
          { class: "meta" },
          `${i.imported} imported · ${i.skipped} skipped · ${i.failed} failed · ${i.seen} seen in ${i.pages} page${i.pages === 1 ? "" : "s"}`,
        ),
        h("div", { class: "meta" }, `started ${when(i.created_at)}${i.finished_at ? ` · finished ${when(i.finished_at)}` : ""} · ${i.import_id}`),
      ),
    );
  }
}

// ---- router ----------------------------------------------------------------------------------

/**
 * Marks the navigation's link to the page shown (aria-current="page"): a user's or a conversation's
 * page belongs to Users, as that is where they are found.
 * @param {string[]} parts
 */
function markCurrent(parts) {
  const section = parts[0] === "conversations" || parts[0] === "users" || parts.length === 0 ? "" : parts[0];
  for (const a of nav.querySelectorAll("a")) {
    const target = (a.getAttribute("href") ?? "").replace(/^#\/?/, "");
    if (target === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  // On a phone the navigation scrolls sideways: keep the current page in view.
  nav.querySelector('[aria-current="page"]')?.scrollIntoView({ block: "nearest", inline: "nearest" });
}

async function route() {
  if (!apiKey()) return renderSignIn();
  nav.hidden = false;
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path = "/", query = ""] = hash.split("?");
  const params = new URLSearchParams(query);
  const parts = path.split("/").filter(Boolean).map((p) => decodeURIComponent(p));
  markCurrent(parts);
  try {
    if (parts.length === 0 || (parts[0] === "users" && parts.length === 1)) await renderUsers(params);
    else if (parts[0] === "search") await renderSearch(params);
    else if (parts[0] === "imports") await renderImports();
    else if (parts[0] === "unattributed") await renderUnattributed(params);
    else if (parts[0] === "forwarding") await renderForwardingFailures();
    else if (parts[0] === "users" && parts[1]) await renderUser(parts[1], params);
    else if (parts[0] === "conversations" && parts[1]) await renderConversation(parts[1], params);
    else if (parts[0] === "health") await renderHealth({ h, show, api, loading, when });
    else if (parts[0] === "erasures" && parts[1]) await renderErasure({ h, show, api, loading, when }, parts[1]);
    else if (parts[0] === "erasures") await renderErasures({ h, show, api, loading, when, searchForm }, params);
    else show(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to users")));
  } catch (err) {
    if (err instanceof ApiFailure && err.status === 401) return;
    show(h("h1", {}, "Something went wrong"), errorBox(err), h("p", {}, h("a", { href: "#/" }, "Back to users")));
  }
  if (!params.has("turn")) main.focus({ preventScroll: true });
}

/** @type {HTMLElement} */ (document.getElementById("sign-out")).addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);
route();
