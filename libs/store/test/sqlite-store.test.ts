import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { SqliteStore, StoreUnavailableError } from "../src/index.js";
import { describeStoreContract } from "./store-contract.js";

const root = mkdtempSync(join(tmpdir(), "vplane-store-"));
after(() => rmSync(root, { recursive: true, force: true }));
let files = 0;
const freshFile = () => join(root, `db-${++files}`, "registry.db");

describeStoreContract("SqliteStore (file)", {
  freshStorage: () => {
    const path = freshFile();
    return Promise.resolve(() => new SqliteStore(path));
  },
});

describe("SqliteStore (:memory:)", () => {
  it("stores and lists without a file", async () => {
    const store = new SqliteStore(":memory:");
    const revision = await store.put("k", { a: 1 }, { ifRevision: "absent" });
    assert.deepEqual(await store.list(""), { entries: [{ key: "k", value: { a: 1 }, revision }] });
    await store.close();
  });
});

describe("SqliteStore durability", () => {
  it("keeps what was written across close and reopen, revisions included", async () => {
    const path = freshFile();
    const first = new SqliteStore(path);
    const revision = await first.put("vms/a/vm-1", { vcpus: 2 });
    await first.close();
    const second = new SqliteStore(path);
    assert.deepEqual(await second.get("vms/a/vm-1"), { key: "vms/a/vm-1", value: { vcpus: 2 }, revision });
    assert.ok((await second.put("vms/a/vm-2", {})) > revision, "the revision counter carries on");
    await second.close();
  });

  it("keeps every acknowledged write of a process killed with SIGKILL", async () => {
    const path = freshFile();
    const writer = fileURLToPath(new URL("./fixtures/acknowledged-writer.js", import.meta.url));
    const child = spawn(process.execPath, [writer, path], { stdio: ["ignore", "pipe", "inherit"] });
    let lastAcked = -1;
    let buffered = "";
    const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
    await new Promise<void>((resolve) => {
      child.stdout.on("data", (chunk: Buffer) => {
        buffered += chunk.toString();
        const lines = buffered.split("\n");
        buffered = lines.pop() ?? "";
        for (const line of lines) lastAcked = Number(line);
        if (lastAcked >= 200 && !child.killed) {
          child.kill("SIGKILL");
          resolve();
        }
      });
    });
    await exited;
    const store = new SqliteStore(path);
    const { entries } = await store.list("acked/", { pageSize: 1000 });
    const written = new Set(entries.map((entry) => (entry.value as { i: number }).i));
    for (let i = 0; i <= lastAcked; i++) assert.ok(written.has(i), `acknowledged write ${i} is missing`);
    await store.close();
  });

  it("reports a file it cannot open as unavailable", () => {
    const notADirectory = join(root, "plain-file");
    writeFileSync(notADirectory, "");
    assert.throws(() => new SqliteStore(join(notADirectory, "registry.db")), StoreUnavailableError);
  });
});
