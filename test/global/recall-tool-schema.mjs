/**
 * Checks elevenlabs/recall-tool.json against the official ElevenLabs SDK's schema for
 * `POST /v1/convai/tools` (@elevenlabs/elevenlabs-js `serialization.ToolRequestModel`, unknown keys
 * refused), in Node, and hands the verdicts to test/recall-tool.test.ts through `provide`.
 *
 * Why here and not in the test: the SDK ships CommonJS whose serializer modules import each other
 * in cycles, which the workers pool's CommonJS shim cannot load inside workerd ("Cannot read
 * properties of undefined (reading 'optional')"); plain Node loads them.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

// The verdicts' type (ProvidedContext "recallToolSchema") is declared in test/recall-tool.test.ts.

/** @param {import("vitest/node").TestProject} project */
export default function setup(project) {
  const require = createRequire(import.meta.url);
  const serialization = require("@elevenlabs/elevenlabs-js/serialization");
  const tool = JSON.parse(readFileSync(new URL("../../elevenlabs/recall-tool.json", import.meta.url), "utf8"));
  const parse = (value) =>
    serialization.ToolRequestModel.parse(value, { unrecognizedObjectKeys: "fail", allowUnrecognizedUnionMembers: false, allowUnrecognizedEnumValues: false });
  const errors = (value) => {
    const r = parse(value);
    return r.ok ? [] : r.errors.map((e) => `${e.path.join(".")}: ${e.message}`);
  };
  const broken = (edit) => {
    const copy = structuredClone(tool);
    edit(copy);
    return errors(copy).length > 0;
  };
  project.provide("recallToolSchema", {
    file: errors(tool),
    refused: {
      camelCaseHeaders: broken((t) => {
        t.tool_config.api_schema.requestHeaders = t.tool_config.api_schema.request_headers;
        delete t.tool_config.api_schema.request_headers;
      }),
      misspeltDynamicVariable: broken((t) => {
        t.tool_config.api_schema.request_body_schema.properties.user_token = { type: "string", dynamic_variables: "postcall_user_token" };
      }),
      unknownToolType: broken((t) => {
        t.tool_config.type = "webhooks";
      }),
      missingUrl: broken((t) => {
        delete t.tool_config.api_schema.url;
      }),
    },
  });
}
