import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { EtcdStore, openStore, parseStoreUrl, SqliteStore, StoreInvalidArgumentError } from "../src/index.js";

describe("parseStoreUrl", () => {
  it("reads the SQLite forms", () => {
    assert.deepEqual(parseStoreUrl("sqlite:///var/lib/vplane/registry.db"), {
      kind: "sqlite",
      path: "/var/lib/vplane/registry.db",
    });
    assert.deepEqual(parseStoreUrl("sqlite:///data%20dir/r.db"), { kind: "sqlite", path: "/data dir/r.db" });
    assert.deepEqual(parseStoreUrl("sqlite::memory:"), { kind: "sqlite", path: ":memory:" });
  });

  it("reads the etcd form: endpoints and a prefix ending in /", () => {
    assert.deepEqual(parseStoreUrl("etcd://10.0.0.1:2379,etcd-2.local:2379/vplane/prod"), {
      kind: "etcd",
      endpoints: ["http://10.0.0.1:2379", "http://etcd-2.local:2379"],
      prefix: "vplane/prod/",
    });
    assert.deepEqual(parseStoreUrl("etcd://[::1]:2379"), {
      kind: "etcd",
      endpoints: ["http://[::1]:2379"],
      prefix: "",
    });
    assert.deepEqual(parseStoreUrl("etcd://h:1/p/"), {
      kind: "etcd",
      endpoints: ["http://h:1"],
      prefix: "p/",
    });
  });

  it("reads each etcd call's deadline from the query (callTimeoutMs)", () => {
    assert.deepEqual(parseStoreUrl("etcd://h:1,h:2/p?callTimeoutMs=2000"), {
      kind: "etcd",
      endpoints: ["http://h:1", "http://h:2"],
      prefix: "p/",
      callTimeoutMs: 2000,
    });
    assert.deepEqual(parseStoreUrl("etcd://h:1?callTimeoutMs=1"), {
      kind: "etcd",
      endpoints: ["http://h:1"],
      prefix: "",
      callTimeoutMs: 1,
    });
  });

  it("refuses anything else, saying what is wrong and which forms it takes", () => {
    const cases: [string, RegExp][] = [
      ["", /unknown scheme/],
      ["postgres://x/y", /unknown scheme/],
      ["sqlite://relative/registry.db", /relative path/],
      ["sqlite:registry.db", /not a SQLite URL form/],
      ["sqlite:///var/lib/", /directory/],
      ["etcd://", /'' where host:port belongs/],
      ["etcd://host/prefix", /'host' where host:port belongs/],
      ["etcd://host:2379,/p", /'' where host:port belongs/],
      ["etcd://host:99999/p", /'host:99999'/],
      ["etcd://host:2379/with space", /printable ASCII/],
      ["etcd://host:2379/p?callTimeoutMs=0", /callTimeoutMs=1..600000/],
      ["etcd://host:2379/p?callTimeoutMs=9000000", /callTimeoutMs=1..600000/],
      ["etcd://host:2379/p?timeout=5", /the query 'timeout=5'/],
    ];
    for (const [url, why] of cases) {
      assert.throws(
        () => parseStoreUrl(url),
        (error: unknown) =>
          error instanceof StoreInvalidArgumentError &&
          why.test(error.message) &&
          error.message.includes("expected sqlite:///absolute/path.db, sqlite::memory:, or etcd://"),
        url,
      );
    }
  });
});

describe("openStore", () => {
  it("opens the backend the URL names", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vplane-store-url-"));
    try {
      const sqlite = openStore(`sqlite://${join(dir, "nested", "registry.db")}`);
      assert.ok(sqlite instanceof SqliteStore);
      await sqlite.put("k", 1);
      await sqlite.close();
      const etcd = openStore("etcd://127.0.0.1:1/p");
      assert.ok(etcd instanceof EtcdStore);
      assert.equal(etcd.prefix, "p/");
      await etcd.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
