// A body over the limit is answered 413 in the error shape, and the client reads that answer
// even while it is still sending (issue 17 point 7): the gateway reads and discards the rest
// instead of closing under the sender, whose kernel would then see a reset.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, it } from "node:test";
import { suiteListeningGateway } from "./support/test-gateway.js";

const TRIES = 20;
const BODY_BYTES = 10 * 1024 * 1024;
const client = fileURLToPath(new URL("./support/oversized-upload-client.js", import.meta.url));

describe("413 for an oversized body, readable by the client", () => {
  const suite = suiteListeningGateway();

  /** Runs TRIES uploads of BODY_BYTES from a client process; the tries that did not read the 413. */
  const missed413 = async (mode: "fetch" | "chunked") => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [client, mode, String(suite.port), suite.gw.token.operator, String(TRIES), String(BODY_BYTES)],
      { timeout: 120_000 },
    );
    const outcomes = JSON.parse(stdout) as { status?: number; reason?: string; error?: string }[];
    assert.equal(outcomes.length, TRIES);
    return outcomes.filter((o) => o.status !== 413 || o.reason !== "REQUEST_BODY_TOO_LARGE");
  };

  it(`fetch of a 10 MB body (limit 1 MiB): all ${TRIES} tries read 413 REQUEST_BODY_TOO_LARGE`, async () => {
    assert.deepEqual(await missed413("fetch"), []);
  });

  it(`a chunked upload of 10 MB: all ${TRIES} tries read 413 REQUEST_BODY_TOO_LARGE`, async () => {
    assert.deepEqual(await missed413("chunked"), []);
  });
});
