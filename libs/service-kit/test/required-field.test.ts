import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { missingField, requiredField } from "../src/required-field.js";
import { VplaneError } from "../src/vplane-error.js";

describe("a request field a call cannot go without", () => {
  it("unset: INVALID_ARGUMENT <FIELD>_MISSING, '<field> is required', the field named (AIP-193)", () => {
    const error = (() => {
      try {
        requiredField(undefined, "queue");
      } catch (e) {
        return e;
      }
      return assert.fail("an unset field must throw");
    })();
    assert.ok(error instanceof VplaneError);
    assert.deepEqual(
      [error.code, error.reason, error.message, error.field],
      ["INVALID_ARGUMENT", "QUEUE_MISSING", "queue is required", "queue"],
    );
  });

  it("set: the value itself, falsy ones too", () => {
    const queue = { qshift: 0 };
    assert.equal(requiredField(queue, "queue"), queue);
    assert.equal(requiredField(0, "count"), 0);
  });

  it("a field that is one of several forms says which it wants", () => {
    const error = missingField("form", "one of seed or guest_ste");
    assert.deepEqual(
      [error.code, error.reason, error.message, error.field],
      ["INVALID_ARGUMENT", "FORM_MISSING", "one of seed or guest_ste is required", "form"],
    );
  });
});
