#!/usr/bin/env node
// `npm run lint:md`: checks that the project's Markdown renders as written (GitHub-flavoured tables),
// because a broken table still reads fine in an editor and only shows on the rendered page. For every
// tracked *.md file, outside fenced code blocks:
//   - every table row has the header's number of cells (cells are split on unescaped "|", as GFM does,
//     also inside `code`: write \| there);
//   - no table is split by a blank line (a row with no header above it is a row that renders as text);
//   - no table lists the same name (a first cell in `code`: a setting, a route) twice: one name, one meaning;
//   - a heading has a blank line before it;
//   - no stray shell lines left by a heredoc ("EOF", "echo ok") and no unclosed code fence.
// Dependency-free on purpose: it is a few rules, and the linters that check them pull in dozens of packages.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

const files = process.argv.length > 2 ? process.argv.slice(2) : execFileSync("git", ["ls-files", "*.md"], { encoding: "utf8" }).split("\n").filter(Boolean);

/** The cells of a table row: split on "|" not preceded by a backslash, the outer pipes dropped. */
export function cells(line) {
  const parts = line.trim().split(/(?<!\\)\|/);
  if (parts[0].trim() === "") parts.shift();
  if (parts.length > 0 && parts[parts.length - 1].trim() === "") parts.pop();
  return parts.map((c) => c.trim());
}

const isRow = (line) => /^\s*\|/.test(line);
const isDelimiter = (line) => isRow(line) && cells(line).every((c) => /^:?-{3,}:?$/.test(c));

/** The problems in one file's text, as "line: message". */
export function check(text) {
  const lines = text.split("\n");
  const problems = [];
  let fence = null;
  let table = null; // { columns, firstCells: Map, start }
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const n = i + 1;
    const open = /^\s*(`{3,}|~{3,})/.exec(line);
    if (fence !== null) {
      if (open && open[1][0] === fence[0] && open[1].length >= fence.length && line.trim() === open[1]) fence = null;
      continue;
    }
    if (open) {
      fence = open[1];
      table = null;
      continue;
    }
    if (table !== null && isRow(line)) {
      const row = cells(line);
      if (row.length !== table.columns) problems.push(`${n}: a table row with ${row.length} cells under a header of ${table.columns}`);
      const key = row[0] ?? "";
      // Only a name in code (a setting, a route, an error code) must be unique: measurement tables repeat plain labels.
      if (key.startsWith("`") && table.firstCells.has(key)) problems.push(`${n}: the table (line ${table.start}) lists ${key} again (first at line ${table.firstCells.get(key)})`);
      else table.firstCells.set(key, n);
      continue;
    }
    table = null;
    if (isRow(line)) {
      if (i + 1 < lines.length && isDelimiter(lines[i + 1])) {
        const columns = cells(line).length;
        if (cells(lines[i + 1]).length !== columns) problems.push(`${n + 1}: the delimiter row has ${cells(lines[i + 1]).length} cells, the header ${columns}`);
        table = { columns, firstCells: new Map(), start: n };
        i++;
        continue;
      }
      const prev = lines[i - 1] ?? "";
      problems.push(
        prev.trim() === "" && isRow(lines[i - 2] ?? "")
          ? `${n}: a blank line splits a table: this row and those after it render as text`
          : `${n}: a table row with no header and delimiter row above it renders as text`,
      );
      continue;
    }
    // An anchor line (<a id="..."></a>) may sit right above its heading.
    if (/^#{1,6}\s/.test(line) && i > 0 && lines[i - 1].trim() !== "" && !/^<a (id|name)="[^"]*"><\/a>\s*$/.test(lines[i - 1])) problems.push(`${n}: a heading needs a blank line before it`);
    if (/^\s*(EOF|'EOF'|echo ok)\s*$/.test(line)) problems.push(`${n}: a stray shell line (${line.trim()}): left over from a heredoc?`);
  }
  if (fence !== null) problems.push(`${lines.length}: a code fence (${fence}) is never closed`);
  return problems;
}

/** Each rule must catch its own mistake, or the check would pass whatever the files say. */
function selfTest() {
  const bad = {
    cells: "| A | B |\n|---|---|\n| 1 | 2 | 3 |\n",
    split: "| A | B |\n|---|---|\n| 1 | 2 |\n\n| 3 | 4 |\n",
    twice: "| Name | Meaning |\n|---|---|\n| `X` | one |\n| `X` | two |\n",
    heading: "text\n## Heading\n",
    heredoc: "text\nEOF\necho ok\n",
    fence: "```sh\nnpm test\n",
  };
  for (const [rule, text] of Object.entries(bad)) if (check(text).length === 0) throw new Error(`check-markdown: the ${rule} rule no longer catches its case`);
  const good = "# T\n\n| A | B |\n|---|---|\n| `a\\|b` | 2 |\n\n```sh\n| not | a table\nEOF\n```\n";
  if (check(good).length > 0) throw new Error(`check-markdown: a good file is refused: ${check(good).join("; ")}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  selfTest();
  let failed = 0;
  for (const file of files) {
    for (const p of check(readFileSync(file, "utf8"))) {
      console.error(`${file}:${p}`);
      failed++;
    }
  }
  if (failed > 0) {
    console.error(`\n${failed} Markdown problem${failed === 1 ? "" : "s"} in ${files.length} files (scripts/check-markdown.mjs says what each rule is for).`);
    process.exit(1);
  }
  console.log(`Markdown: ${files.length} files, every table, heading and fence renders as written.`);
}
