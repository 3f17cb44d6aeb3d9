/**
 * The console's security headers (issue 12, item 7). Workers static assets apply public/_headers
 * (locally too: `wrangler dev` serves them, which test-e2e/console.e2e.mjs checks on real
 * responses); the vitest pool serves no assets, so here the rule itself is read and checked, with
 * the files it must fit: a policy without inline script or style only works if the pages use none.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

const files = JSON.parse(env.CONSOLE_FILES) as { headers: string; html: string; js: string };

/** `_headers` rules: a path line, then indented `Name: value` lines. */
function rules(text: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  let current: Map<string, string> | null = null;
  for (const line of text.split("\n")) {
    if (line.trim() === "" || line.trim().startsWith("#")) continue;
    if (!/^\s/.test(line)) {
      current = new Map();
      out.set(line.trim(), current);
    } else if (current) {
      const i = line.indexOf(":");
      current.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
    }
  }
  return out;
}

describe("console headers (public/_headers)", () => {
  const rule = rules(files.headers).get("/console/*");

  it("cover every page and asset of the console", () => {
    expect(rule).toBeDefined();
  });

  it("send a Content-Security-Policy with no inline script and frame-ancestors 'none', nosniff and a Referrer-Policy", () => {
    const csp = rule!.get("content-security-policy")!;
    const directives = new Map(csp.split(";").map((d) => d.trim().split(/\s+/)).map(([name, ...values]) => [name!, values]));
    expect(directives.get("script-src")).toEqual(["'self'"]);
    expect(directives.get("style-src")).toEqual(["'self'"]);
    expect(directives.get("frame-ancestors")).toEqual(["'none'"]);
    expect(directives.get("default-src")).toEqual(["'none'"]);
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
    expect(rule!.get("x-content-type-options")).toBe("nosniff");
    expect(rule!.get("referrer-policy")).toBe("no-referrer");
  });

  it("fit the console's files: no inline script, handler or style attribute", () => {
    expect(files.html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/i);
    expect(files.html).not.toMatch(/\son[a-z]+=|\sstyle=|<style/i);
    // app.js builds elements with h(tag, attrs): an inline style attribute would be refused by the policy.
    expect(files.js).not.toMatch(/\bstyle:\s*"/);
  });
});
