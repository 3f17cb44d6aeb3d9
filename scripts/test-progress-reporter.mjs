// A vitest reporter (vitest.config.ts adds it when POSTCALL_TEST_PROGRESS names a file): appends one
// JSON line per event (the files to run, a file starting, a test finishing, a file ending, the run
// ending) so that scripts/test.mjs can tell a stalled pool from a slow test (scripts/lib/test-progress.mjs).
import { appendFileSync } from "node:fs";

export default class TestProgressReporter {
  constructor() {
    this.path = process.env["POSTCALL_TEST_PROGRESS"];
  }
  write(event) {
    if (this.path) appendFileSync(this.path, `${JSON.stringify({ at: Date.now(), ...event })}\n`);
  }
  onTestRunStart(specifications) {
    this.write({ kind: "files", files: [...new Set(specifications.map((s) => s.moduleId))] });
  }
  onTestModuleStart(testModule) {
    this.write({ kind: "start", file: testModule.moduleId });
  }
  onTestCaseResult(testCase) {
    this.write({ kind: "test", file: testCase.module.moduleId, name: testCase.fullName });
  }
  onTestModuleEnd(testModule) {
    this.write({ kind: "end", file: testModule.moduleId, state: testModule.state() });
  }
  onTestRunEnd(_modules, _errors, reason) {
    this.write({ kind: "run-end", reason });
  }
}
