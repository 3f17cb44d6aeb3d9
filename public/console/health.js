// @ts-check
/**
 * The console's health page (#/health): GET /v1/health/details as words first (what is wrong, in
 * the order to fix it), then numbers, then three charts drawn with Chart.js. Chart.js is served by
 * this Worker from /console/vendor/ (copied from node_modules by scripts/vendor-assets.mjs) and
 * loaded only when this page opens, so the rest of the console does not pay for it.
 */

/**
 * What the page needs from app.js (passed in, so the two modules do not import each other).
 * @typedef {{
 *   h: (tag: string, attrs?: Record<string, string | boolean | ((e: Event) => void) | undefined>, ...children: (Node | string | null | undefined | false)[]) => HTMLElement,
 *   show: (...children: (Node | string | null | undefined | false)[]) => void,
 *   api: (path: string) => Promise<any>,
 *   loading: (text?: string) => HTMLElement,
 *   when: (iso: string | null | undefined) => string,
 * }} Kit
 */

/** @type {Promise<any> | null} */
let chartLib = null;
/** Charts of the last render, destroyed before the next (Chart.js keeps every instance and its resize listener). */
/** @type {any[]} */
let drawn = [];

/** Loads Chart.js once (a classic script that defines window.Chart). */
function loadChart() {
  chartLib ??= new Promise((resolve, reject) => {
    const w = /** @type {any} */ (window);
    if (w.Chart) return resolve(w.Chart);
    const s = document.createElement("script");
    s.src = "/console/vendor/chart.umd.min.js";
    s.onload = () => resolve(w.Chart);
    s.onerror = () => {
      chartLib = null;
      reject(new Error("The charting library could not be loaded."));
    };
    document.head.append(s);
  });
  return chartLib;
}

const OUTCOME_COLOURS = /** @type {Record<string, string>} */ ({ success: "#2e7d32", failure: "#b3261e", unknown: "#8d8d86", not_connected: "#6d1b16" });
/** Calls per day's outcomes in words: ElevenLabs' call_successful, and calls that never connected (call_initiation_failure). */
export const OUTCOME_WORDS = /** @type {Record<string, string>} */ ({ success: "successful", failure: "unsuccessful", unknown: "not evaluated", not_connected: "never connected" });
const PALETTE = ["#0b57d0", "#b3261e", "#e8710a", "#7b1fa2", "#00897b", "#c2185b", "#5d4037", "#546e7a", "#9e9d24", "#3949ab"];

/** @param {number | null | undefined} s */
function age(s) {
  if (s === null || s === undefined) return "–";
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} days`;
}

/** @param {Record<string, number> | null | undefined} t */
const total = (t) => Object.values(t ?? {}).reduce((a, b) => a + b, 0);

/**
 * A two-column table of counts for 24 h and 30 days.
 * @param {Kit} kit @param {string} label @param {Record<string, number>} day @param {Record<string, number>} month @param {string} empty
 */
function countTable(kit, label, day, month, empty) {
  const { h } = kit;
  const keys = [...new Set([...Object.keys(month), ...Object.keys(day)])].sort((a, b) => (month[b] ?? 0) - (month[a] ?? 0));
  if (keys.length === 0) return h("p", { class: "muted" }, empty);
  return h(
    "table",
    { class: "counts", "aria-label": label },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, label), h("th", { scope: "col" }, "24 h"), h("th", { scope: "col" }, "30 days"))),
    h("tbody", {}, ...keys.map((k) => h("tr", {}, h("th", { scope: "row" }, h("code", {}, k)), h("td", {}, String(day[k] ?? 0)), h("td", {}, String(month[k] ?? 0))))),
  );
}

/**
 * A chart in a card, with its numbers in a table for screen readers and for anyone who would rather read.
 * @param {Kit} kit @param {string} id @param {string} title @param {string} summary
 */
function chartCard(kit, id, title, summary) {
  const { h } = kit;
  const canvas = /** @type {HTMLCanvasElement} */ (h("canvas", { id, role: "img", "aria-label": `${title}: ${summary}` }));
  const card = h("section", { class: "card chart", "aria-labelledby": `${id}-h` }, h("h2", { id: `${id}-h` }, title), h("p", { class: "meta" }, summary), h("div", { class: "chart-box" }, canvas));
  return { card, canvas };
}

/**
 * @param {any} Chart @param {HTMLCanvasElement} canvas @param {string[]} labels
 * @param {{ label: string, data: number[], backgroundColor: string }[]} datasets @param {boolean} stacked
 * @param {boolean} [everyLabel] show every label (turned if need be) instead of skipping some when crowded
 */
function barChart(Chart, canvas, labels, datasets, stacked, everyLabel = false) {
  const styles = getComputedStyle(document.documentElement);
  const fg = styles.getPropertyValue("--muted").trim() || "#66665f";
  const grid = styles.getPropertyValue("--line").trim() || "#deded8";
  const chart = new Chart(canvas, {
    type: "bar",
    data: { labels, datasets },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      plugins: { legend: { display: datasets.length > 1, position: "bottom", labels: { color: fg, boxWidth: 12 } } },
      scales: {
        x: { stacked, ticks: everyLabel ? { color: fg, autoSkip: false, maxRotation: 60 } : { color: fg, maxRotation: 0, autoSkip: true, autoSkipPadding: 8 }, grid: { display: false } },
        y: { stacked, beginAtZero: true, ticks: { color: fg, precision: 0 }, grid: { color: grid } },
      },
    },
  });
  drawn.push(chart);
  return chart;
}

/** @param {Kit} kit */
export async function renderHealth(kit) {
  const { h, show, api, loading, when } = kit;
  for (const chart of drawn) chart.destroy();
  drawn = [];
  show(h("h1", {}, "Health"), loading());
  const d = await api("/v1/health/details");

  const banner =
    d.problems.length === 0
      ? h("div", { class: "card status ok", role: "status" }, h("strong", {}, "Healthy. "), "Webhooks are accepted, outboxes are delivering, and no expected audio is missing.")
      : h(
          "section",
          { class: `card status ${d.status}`, "aria-labelledby": "problems-h" },
          h("h2", { id: "problems-h" }, d.status === "error" ? "Needs attention now" : "Worth a look"),
          h("ul", { class: "problems", "aria-label": "Problems" }, ...d.problems.map((/** @type {any} */ p) => h("li", { class: p.severity, "data-code": p.code }, h("strong", {}, `${p.severity}: `), p.message))),
        );

  const w = d.webhooks;
  const webhooks = h(
    "section",
    { class: "card", "aria-labelledby": "webhooks-h" },
    h("h2", { id: "webhooks-h" }, "Webhooks"),
    w
      ? h(
          "div",
          {},
          countTable(kit, "Accepted", w.last_24h.accepted, w.last_30d.accepted, "No event accepted in 30 days."),
          countTable(kit, "Refused", { ...w.last_24h.refused, ...prefixed(w.last_24h.initiation_refused) }, { ...w.last_30d.refused, ...prefixed(w.last_30d.initiation_refused) }, "Nothing refused in 30 days."),
          total(w.last_30d.failed) > 0 ? countTable(kit, "Answered 5xx", w.last_24h.failed, w.last_30d.failed, "") : null,
          total(w.last_30d.duplicate) > 0 ? countTable(kit, "Redeliveries", w.last_24h.duplicate, w.last_30d.duplicate, "") : null,
          total(w.last_30d.dropped) > 0 ? countTable(kit, "Dropped (erased users)", w.last_24h.dropped, w.last_30d.dropped, "") : null,
          h("h3", {}, "Last accepted"),
          Object.keys(w.last_accepted).length === 0
            ? h("p", { class: "muted" }, "Nothing yet.")
            : h("dl", { class: "vars", "aria-label": "Last accepted" }, ...Object.entries(w.last_accepted).flatMap(([type, e]) => [h("dt", {}, type), h("dd", {}, when(/** @type {any} */ (e).at))])),
        )
      : h("p", { class: "muted" }, "The counters could not be read."),
  );

  const o = d.outbox;
  const outbox = h(
    "section",
    { class: "card", "aria-labelledby": "outbox-h" },
    h("h2", { id: "outbox-h" }, "Outbox backlog"),
    !o
      ? h("p", { class: "muted" }, "Unknown.")
      : o.objects === 0
        ? h("p", { id: "outbox-summary" }, "Every acknowledged event has reached D1 and R2, or is on its first attempt.")
        : h(
            "div",
            {},
            h("p", { id: "outbox-summary" }, `${o.pending} events waiting in ${o.objects} outbox${o.objects === 1 ? "" : "es"}, oldest ${age(o.oldest_age_seconds)}, up to ${o.max_attempts} attempts.`),
            h("ul", {}, ...o.worst.map((/** @type {any} */ x) => h("li", {}, h("code", {}, x.object), ` · ${x.pending} pending · ${x.attempts} attempts`, x.last_error ? h("div", { class: "meta" }, x.last_error) : null))),
          ),
  );

  const p = d.projection;
  const projection = h(
    "section",
    { class: "card", "aria-labelledby": "projection-h" },
    h("h2", { id: "projection-h" }, "D1 projection"),
    p
      ? h(
          "dl",
          { class: "vars" },
          h("dt", {}, "conversations (24 h)"),
          h("dd", {}, String(p.conversations_24h)),
          h("dt", {}, "lag, average"),
          h("dd", {}, p.avg_lag_seconds === null ? "–" : age(Math.round(p.avg_lag_seconds))),
          h("dt", {}, "lag, worst"),
          h("dd", {}, age(p.max_lag_seconds)),
          h("dt", {}, "last written"),
          h("dd", {}, when(p.last_projected_at)),
        )
      : h("p", { class: "muted" }, "D1 could not be queried."),
  );

  const a = d.audio;
  const audio = h(
    "section",
    { class: "card", "aria-labelledby": "audio-missing-h" },
    h("h2", { id: "audio-missing-h" }, "Audio that never came"),
    !a
      ? h("p", { class: "muted" }, "D1 could not be queried.")
      : h(
          "div",
          {},
          h("p", { id: "audio-summary" }, `${a.missing_24h} in 24 h, ${a.missing_30d} in 30 days (calls of agents that send audio, with none ${age(a.expected_within_seconds)} after the transcript).`),
          a.missing.length > 0
            ? h("ul", { "aria-label": "Calls without audio" }, ...a.missing.map((/** @type {any} */ m) => h("li", {}, h("a", { href: `#/conversations/${encodeURIComponent(m.conversation_id)}` }, m.conversation_id), h("span", { class: "meta" }, ` ${when(m.received_at)}`))))
            : null,
        ),
  );

  const forwarding = h(
    "section",
    { class: "card", "aria-labelledby": "forwarding-h" },
    h("h2", { id: "forwarding-h" }, "Forwarding"),
    d.forwarding === null
      ? h("p", { class: "muted" }, "D1 could not be read.")
      : d.forwarding.destinations === 0 && d.forwarding.failures === 0
        ? h("p", { class: "muted" }, "Forwarding is off (no FORWARD_DESTINATIONS).")
        : h(
            "div",
            {},
            h("p", { id: "forwarding-summary" }, `${d.forwarding.failures} undelivered event${d.forwarding.failures === 1 ? "" : "s"} kept as dead letters, to ${d.forwarding.destinations} destination${d.forwarding.destinations === 1 ? "" : "s"}.`),
            d.forwarding.by_destination.length > 0
              ? h("ul", { "aria-label": "Dead letters by destination" }, ...d.forwarding.by_destination.map((/** @type {any} */ f) => h("li", {}, `${f.destination}: ${f.failures}`, h("span", { class: "meta" }, ` last ${when(f.last_failed_at)}`))))
              : null,
            h("p", {}, h("a", { href: "#/forwarding" }, "Forwarding failures")),
          ),
  );

  const c = d.charts;
  const notConnected = (c.calls_per_day.outcomes.not_connected ?? []).reduce((/** @type {number} */ a, /** @type {number} */ b) => a + b, 0);
  const callsTotal = Object.values(c.calls_per_day.outcomes).reduce((/** @type {number} */ n, /** @type {any} */ xs) => n + xs.reduce((/** @type {number} */ a, /** @type {number} */ b) => a + b, 0), 0);
  const refusalsTotal = Object.values(c.refusals_per_hour.reasons).reduce((/** @type {number} */ n, /** @type {any} */ xs) => n + xs.reduce((/** @type {number} */ a, /** @type {number} */ b) => a + b, 0), 0);
  const durationsTotal = c.call_durations.counts.reduce((/** @type {number} */ a, /** @type {number} */ b) => a + b, 0);
  const calls = chartCard(kit, "chart-calls", "Calls per day", `${callsTotal} calls in 30 days, by outcome${notConnected > 0 ? ` (${notConnected} never connected)` : ""}`);
  const refusals = chartCard(kit, "chart-refusals", "Refusals per hour", `${refusalsTotal} refused in 24 hours, by reason`);
  const durations = chartCard(kit, "chart-durations", "Call durations", `${durationsTotal} calls in 30 days`);

  show(
    h("div", { class: "row spread" }, h("h1", {}, "Health"), h("button", { type: "button", class: "secondary", onclick: () => renderHealth(kit) }, "Refresh")),
    h("p", { class: "muted" }, `As of ${when(d.generated_at)}. Webhook counts are approximate (each Worker instance tallies in memory and sends its counts every 10 s, so the last seconds may be missing; docs/health.md in the repository has the details); D1 figures are exact.`),
    banner,
    h("div", { class: "grid2 charts" }, calls.card, refusals.card, durations.card),
    h("div", { class: "grid2" }, webhooks, h("div", { class: "stack" }, outbox, projection, audio, forwarding)),
  );

  let Chart;
  try {
    Chart = await loadChart();
  } catch (err) {
    for (const x of [calls, refusals, durations]) x.canvas.replaceWith(h("p", { class: "card error", role: "alert" }, err instanceof Error ? err.message : String(err)));
    return;
  }
  const shortDay = (/** @type {string} */ s) => s.slice(5);
  barChart(
    Chart,
    calls.canvas,
    c.calls_per_day.days.map(shortDay),
    Object.entries(c.calls_per_day.outcomes).map(([k, data], i) => ({ label: OUTCOME_WORDS[k] ?? k, data: /** @type {number[]} */ (data), backgroundColor: OUTCOME_COLOURS[k] ?? PALETTE[i % PALETTE.length] })),
    true,
  );
  const hourLabel = (/** @type {string} */ s) => `${new Date(s).getHours().toString().padStart(2, "0")}:00`;
  const reasons = Object.entries(c.refusals_per_hour.reasons);
  barChart(
    Chart,
    refusals.canvas,
    c.refusals_per_hour.hours.map(hourLabel),
    reasons.length > 0
      ? reasons.map(([k, data], i) => ({ label: k, data: /** @type {number[]} */ (data), backgroundColor: PALETTE[i % PALETTE.length] ?? "#0b57d0" }))
      : [{ label: "refused", data: c.refusals_per_hour.hours.map(() => 0), backgroundColor: "#0b57d0" }],
    true,
  );
  // Every bin labelled: with every other label skipped, a bar seemed to belong to its neighbours' range.
  barChart(Chart, durations.canvas, c.call_durations.buckets, [{ label: "calls", data: c.call_durations.counts, backgroundColor: "#0b57d0" }], false, true);
}

/** @param {Record<string, number> | undefined} t */
function prefixed(t) {
  return Object.fromEntries(Object.entries(t ?? {}).map(([k, v]) => [`initiation: ${k}`, v]));
}
