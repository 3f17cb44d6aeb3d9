// @ts-check
/**
 * The console's erasure records (#/erasures, #/erasures/<id>): GET /v1/erasures, newest first, and one
 * record with its counts per store; app.js also shows the record right after a user is deleted.
 * A record names the user only by the ledger's keyed hash: the page finds one user's erasures by the
 * id typed into it (the API hashes it the same way), and never shows an id it was not given.
 */

/**
 * What the page needs from app.js (passed in, so the two modules do not import each other).
 * @typedef {{
 *   h: (tag: string, attrs?: Record<string, string | boolean | ((e: Event) => void) | undefined>, ...children: (Node | string | null | undefined | false)[]) => HTMLElement,
 *   show: (...children: (Node | string | null | undefined | false)[]) => void,
 *   api: (path: string) => Promise<any>,
 *   loading: (text?: string) => HTMLElement,
 *   when: (iso: string | null | undefined) => string,
 *   searchForm?: (input: HTMLInputElement, label: string, button: string, hashFor: (value: string) => string) => HTMLElement,
 * }} Kit
 */

/** @type {Record<string, string>} */
const STATES = {
  erasing: "Erasing: postcall's copies are still being removed (repeat the DELETE to finish)",
  deleting_at_elevenlabs: "postcall's copies are gone; deletions at ElevenLabs are still being retried",
  done: "Done",
  done_with_failures: "Done, but ElevenLabs refused some deletions",
};

const erasureHref = (/** @type {string} */ id) => `#/erasures/${encodeURIComponent(id)}`;

/**
 * One record as a card: when, state, and what was removed where.
 * @param {Kit} kit
 * @param {any} r a record as GET /v1/erasures/:id answers it
 */
export function erasureCard(kit, r) {
  const { h, when } = kit;
  const d = r.deleted;
  /** @type {[string, string | number][]} */
  const rows = [
    ["Memory rows (Durable Objects)", d.memory_rows],
    ["Conversations erased (ledger)", r.conversations_erased],
    ["D1 conversations", d.d1.conversations],
    ["D1 turns", d.d1.turns],
    ["D1 audio rows", d.d1.audio],
    ["D1 call failures", d.d1.call_failures],
    ["R2 objects", d.r2_objects],
    ["Phone links", d.phone_links],
    ["Agent memories (scopes)", d.scopes],
    ["user.erased forwarded", r.forwarded.user_erased],
  ];
  const el = r.elevenlabs;
  if (el.requested) {
    rows.push(["ElevenLabs: deleted", el.done], ["ElevenLabs: still retrying", el.pending], ["ElevenLabs: refused", el.failed]);
    if (el.last_status !== null) rows.push(["ElevenLabs: last answer", el.last_status === 0 ? "unreachable / no key" : `HTTP ${el.last_status}`]);
  } else rows.push(["ElevenLabs", "not asked (ERASE_AT_ELEVENLABS is off)"]);
  return h(
    "section",
    { class: `card status ${r.state === "done" ? "ok" : r.state === "done_with_failures" ? "error" : "warning"}`, "aria-label": `Erasure ${r.erasure_id}` },
    h("h2", {}, STATES[r.state] ?? r.state),
    h("p", { class: "meta" }, `began ${when(r.began_at)}${r.finished_at ? ` · postcall's copies gone ${when(r.finished_at)}` : ""}`),
    h("p", { class: "meta" }, "Erasure ", h("span", { class: "mono" }, r.erasure_id), " · user (keyed hash) ", h("span", { class: "mono" }, r.subject)),
    h("table", { class: "counts" }, h("tbody", {}, ...rows.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, String(v)))))),
  );
}

/**
 * #/erasures?user_id=...: every erasure, newest first, or one user's.
 * @param {Kit} kit
 * @param {URLSearchParams} params
 */
export async function renderErasures(kit, params) {
  const { h, show, api, loading, when } = kit;
  const searchForm = kit.searchForm;
  if (!searchForm) throw new Error("renderErasures needs the console's searchForm");
  const userId = params.get("user_id") ?? "";
  const input = /** @type {HTMLInputElement} */ (h("input", { id: "erasure-user", name: "user_id", type: "search", value: userId, placeholder: "the user id, as typed", autocomplete: "off" }));
  const form = searchForm(input, "Find a user's erasures by their id", "Find", (/** @type {string} */ v) => (v ? `#/erasures?user_id=${encodeURIComponent(v)}` : "#/erasures"));
  const list = h("ol", { class: "list", "aria-label": "Erasures" });
  const more = h("div");
  show(
    h("h1", {}, "Erasures"),
    h("p", { class: "muted" }, "Every DELETE of a user, newest first. Records hold counts and times, and the user only as a keyed hash: type an id to find theirs."),
    form,
    list,
    more,
  );

  /** @param {string | null} cursor */
  async function page(cursor) {
    more.replaceChildren(loading());
    const qs = new URLSearchParams({ limit: "20" });
    if (userId) qs.set("user_id", userId);
    if (cursor) qs.set("cursor", cursor);
    const body = await api(`/v1/erasures?${qs}`);
    for (const r of body.erasures) {
      const c = r.deleted.d1.conversations;
      list.append(
        h(
          "li",
          { class: "card" },
          h(
            "a",
            { href: erasureHref(r.erasure_id) },
            h("span", { class: "title" }, `${when(r.began_at)} · ${STATES[r.state] ?? r.state}`),
            h("div", { class: "meta" }, `${r.conversations_erased} conversation${r.conversations_erased === 1 ? "" : "s"} erased · ${c} D1 row${c === 1 ? "" : "s"} · ${r.deleted.r2_objects} R2 objects${r.elevenlabs.requested ? ` · ElevenLabs ${r.elevenlabs.done} deleted, ${r.elevenlabs.pending} pending, ${r.elevenlabs.failed} refused` : ""}`),
            h("div", { class: "meta mono" }, r.erasure_id),
          ),
        ),
      );
    }
    if (list.children.length === 0) more.replaceChildren(h("p", { class: "card muted" }, userId ? "No erasure of this user id." : "No erasures yet."));
    else if (body.next_cursor) more.replaceChildren(h("button", { type: "button", class: "secondary", onclick: () => page(body.next_cursor) }, "Show older erasures"));
    else more.replaceChildren();
  }
  await page(null);
}

/**
 * #/erasures/<id>: one record.
 * @param {Kit} kit
 * @param {string} erasureId
 */
export async function renderErasure(kit, erasureId) {
  const { h, show, api, loading } = kit;
  show(h("h1", {}, "Erasure"), loading());
  const r = await api(`/v1/erasures/${encodeURIComponent(erasureId)}`);
  show(h("h1", {}, "Erasure"), erasureCard(kit, r), h("p", {}, h("a", { href: "#/erasures" }, "All erasures")));
}
