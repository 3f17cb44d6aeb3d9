#!/usr/bin/env node
// Copies the console's third-party browser files from node_modules into public/console/vendor/, so
// they are served as static assets by this Worker (no CDN). wrangler runs this before every
// `wrangler dev` and `wrangler deploy` ([build] in wrangler.toml); the copies are git-ignored, and the
// version is the one pinned in package-lock.json. Each file travels with its licence.
import { copyFileSync, mkdirSync } from "node:fs";

const FILES = [
  ["node_modules/chart.js/dist/chart.umd.min.js", "public/console/vendor/chart.umd.min.js"],
  ["node_modules/chart.js/LICENSE.md", "public/console/vendor/chart.js.LICENSE.md"],
];

mkdirSync("public/console/vendor", { recursive: true });
for (const [from, to] of FILES) copyFileSync(from, to);
