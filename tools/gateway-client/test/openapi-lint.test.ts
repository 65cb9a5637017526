// The gateway's OpenAPI document is made for client generators (issue 15 point 4): Redocly's
// recommended rules pass with no problem at all, and the rules generators need beyond them hold.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { createConfig, lintFromString } from "@redocly/openapi-core";

const source = readFileSync(new URL("../../src/gen/openapi.json", import.meta.url), "utf8");
const document = JSON.parse(source) as {
  paths: Record<
    string,
    Record<
      string,
      {
        operationId?: string;
        responses: Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }>;
      }
    >
  >;
};

/** Every schema object in the document, with its JSON pointer. */
function* schemasIn(value: unknown, pointer = "#"): Generator<[string, Record<string, unknown>]> {
  if (value === null || typeof value !== "object") return;
  if (!Array.isArray(value)) yield [pointer, value as Record<string, unknown>];
  for (const [key, child] of Object.entries(value)) yield* schemasIn(child, `${pointer}/${key}`);
}

describe("OpenAPI document (tools/gateway-client/src/gen/openapi.json)", () => {
  it("passes Redocly's recommended ruleset without an error or a warning", async () => {
    const config = await createConfig({ extends: ["recommended"] });
    const problems = await lintFromString({ source, absoluteRef: "openapi.json", config });
    assert.deepEqual(
      problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message} at ${p.location[0]?.pointer ?? "?"}`),
      [],
    );
  });

  it("names every operation (operationId) and never twice", () => {
    const ids = Object.values(document.paths).flatMap((item) =>
      Object.values(item).map((operation) => operation.operationId),
    );
    assert.ok(ids.length > 40, `${ids.length} operations`);
    assert.deepEqual(
      ids.filter((id) => id === undefined),
      [],
    );
    assert.equal(new Set(ids).size, ids.length, "operationIds are unique");
  });

  it("writes enums as plain string enums, never anyOf lists of one-value enums", () => {
    const oneValueLists = [...schemasIn(document)]
      .filter(([, schema]) => Array.isArray(schema["anyOf"]))
      .filter(([, schema]) =>
        (schema["anyOf"] as Record<string, unknown>[]).every(
          (branch) => "const" in branch || (Array.isArray(branch["enum"]) && branch["enum"].length === 1),
        ),
      )
      .map(([pointer]) => pointer);
    assert.deepEqual(oneValueLists, []);
  });

  // The gateway's errors are JSON error bodies on every route, streams included: a stream route
  // refuses (404, 400 BAD_LAST_EVENT_ID, 401 ...) before its stream opens, as JSON. (An explicit
  // status may carry another body: /readyz's 503 is its readiness report.)
  it("declares every 4XX and 5XX response as application/json with the Error schema, streams included", () => {
    const wrong = Object.entries(document.paths).flatMap(([path, item]) =>
      Object.entries(item).flatMap(([method, operation]) =>
        Object.entries(operation.responses)
          .filter(([status]) => status === "4XX" || status === "5XX")
          .filter(
            ([, response]) =>
              Object.keys(response.content ?? {}).join() !== "application/json" ||
              response.content!["application/json"]!.schema?.$ref !== "#/components/schemas/Error",
          )
          .map(
            ([status, response]) =>
              `${method} ${path} ${status}: ${Object.keys(response.content ?? {}).join()}`,
          ),
      ),
    );
    assert.deepEqual(wrong, []);
    const streams = Object.values(document.paths).filter(
      (item) => item["get"]?.responses["200"]?.content?.["text/event-stream"],
    );
    assert.ok(streams.length >= 3, `${streams.length} stream routes`);
  });
});
