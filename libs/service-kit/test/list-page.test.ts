import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { listPage } from "../src/list-page.js";
import type { VplaneError } from "../src/vplane-error.js";

const entries = new Map(["vm-c", "vm-a", "vm-b", "other"].map((k) => [k, k.toUpperCase()]));
const issued = (k: string) => k.startsWith("vm-");

describe("listPage (AIP-158): key order, page tokens that name the last key, bounded sizes", () => {
  it("pages through the keys under `under` in order, the last page without a token", () => {
    const first = listPage(entries, { pageSize: 2, pageToken: "" }, { under: "vm-", issued });
    assert.deepEqual(first.items, ["VM-A", "VM-B"]);
    const second = listPage(
      entries,
      { pageSize: 2, pageToken: first.nextPageToken },
      { under: "vm-", issued },
    );
    assert.deepEqual(second, { items: ["VM-C"], nextPageToken: "" });
  });

  it("page_size 0 is 100; above 1000 is INVALID_ARGUMENT PAGE_SIZE_TOO_LARGE; a foreign token PAGE_TOKEN_INVALID", () => {
    assert.equal(listPage(entries, { pageSize: 0, pageToken: "" }, { issued }).items.length, 4);
    const refused = (pageSize: number, pageToken: string) => {
      try {
        listPage(entries, { pageSize, pageToken }, { under: "vm-", issued });
      } catch (e) {
        return [(e as VplaneError).code, (e as VplaneError).reason, (e as VplaneError).field];
      }
      return undefined;
    };
    assert.deepEqual(refused(1001, ""), ["INVALID_ARGUMENT", "PAGE_SIZE_TOO_LARGE", "page_size"]);
    const foreign = Buffer.from("other", "utf8").toString("base64url");
    assert.deepEqual(refused(10, foreign), ["INVALID_ARGUMENT", "PAGE_TOKEN_INVALID", "page_token"]);
  });
});
