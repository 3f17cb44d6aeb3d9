/**
 * What the command-line scripts print at their edges (scripts/lib/migrations.mjs, sample-cli.mjs):
 * `npm start` prints one line for the migrations instead of wrangler's table redrawn per migration,
 * and the sample sender names the real cause when it cannot sign or reach the service.
 */
import { describe, expect, it } from "vitest";
import { migrationSummary } from "../scripts/lib/migrations.mjs";
import { noSecretMessage, unreachableMessage } from "../scripts/lib/sample-cli.mjs";
import wrangler from "./fixtures/wrangler-migrations-apply.json";

describe("npm start's migrations", () => {
  it("one line for wrangler's output of a first start, which draws the migration table again and again", () => {
    expect(wrangler.output.match(/┌/g)!.length).toBeGreaterThan(2);
    expect(migrationSummary(wrangler.output)).toBe("D1 (local): applied 9 migrations (0001_initial.sql … 0010_core_v3.sql).");
  });

  it("one line when there is nothing to apply, and none (the raw output is printed) when it is not understood", () => {
    expect(migrationSummary("Resource location: local\n\n✅ No migrations to apply!\n")).toBe("D1 (local): every migration is applied.");
    expect(migrationSummary("something wrangler never said before")).toBeNull();
    expect(migrationSummary(wrangler.output.replace(/0005_trust\.sql(\s*│\s*)✅/, "0005_trust.sql$1❌"))).toBeNull();
  });
});

describe("send-sample's messages", () => {
  it('--secret "" says the value was empty, not to create .dev.vars', () => {
    expect(noSecretMessage("")).toMatch(/^--secret was given an empty value/);
    expect(noSecretMessage("")).not.toMatch(/\.dev\.vars/);
    expect(noSecretMessage(undefined)).toMatch(/create \.dev\.vars \(npm start does\)/);
  });

  it("a remote URL is not told to run npm start; a local one is, with its port", () => {
    const remote = unreachableMessage("https://postcall.example.workers.dev", "getaddrinfo ENOTFOUND postcall.example.workers.dev");
    expect(remote).toMatch(/^Could not reach https:\/\/postcall\.example\.workers\.dev: getaddrinfo ENOTFOUND/);
    expect(remote).toMatch(/deployed \(npx wrangler deploy\)/);
    expect(remote).not.toMatch(/npm start/);
    expect(unreachableMessage("http://localhost:8787", "connect ECONNREFUSED")).toMatch(/Is the service running \(npm start\)\?$/);
    expect(unreachableMessage("http://127.0.0.1:8797", "connect ECONNREFUSED")).toMatch(/\(npm start\) on port 8797\?$/);
    expect(unreachableMessage("not a url", "x")).toMatch(/is not a URL/);
  });
});
