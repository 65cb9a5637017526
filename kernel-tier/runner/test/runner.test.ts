import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { InitramfsTree, bootGuest, findArtefacts, parseReportLine } from "../src/index.js";

describe("serial-console reports", () => {
  it("a report line is '@@vplane <kind> <json>' anywhere on the line; other lines carry none", () => {
    assert.deepEqual(parseReportLine('[  3.1] x @@vplane probe {"available":true}'), {
      kind: "probe",
      payload: { available: true },
    });
    assert.deepEqual(parseReportLine("@@vplane end 0"), { kind: "end", payload: 0 });
    assert.deepEqual(parseReportLine("@@vplane note not json"), { kind: "note", payload: "not json" });
    assert.equal(parseReportLine("Linux version 6.1.0"), undefined);
  });
});

describe("bootGuest (a shell stands in for QEMU)", () => {
  it("collects reports until the end report, then ends the process by its PID at once", async () => {
    const script =
      'echo "boot noise"; echo "@@vplane step {\\"n\\":1}"; echo "@@vplane end 3"; exec sleep 60';
    const result = await bootGuest({ qemu: "sh", args: ["-c", script], timeoutMs: 20_000 });
    assert.deepEqual(result.reports, [
      { kind: "step", payload: { n: 1 } },
      { kind: "end", payload: 3 },
    ]);
    assert.equal(result.endStatus, 3);
    assert.equal(result.failure, undefined);
    assert.ok(result.durationMs < 10_000, `ended by PID, not by its own exit (${result.durationMs} ms)`);
    assert.ok(result.console.includes("boot noise"));
  });

  it("a UTF-8 character split between two console writes arrives whole (the stream is decoded, not each read)", async () => {
    // "→" is E2 86 92: its first byte in one write, the rest 300 ms later.
    const script = `printf '@@vplane step "a \\342'; sleep 0.3; printf '\\206\\222 b"\\n'; echo "@@vplane end 0"; exec sleep 60`;
    const result = await bootGuest({ qemu: "sh", args: ["-c", script], timeoutMs: 20_000 });
    assert.deepEqual(result.reports[0], { kind: "step", payload: "a → b" });
  });

  it("a guest that never ends is killed at the timeout and says so", async () => {
    const result = await bootGuest({ qemu: "sh", args: ["-c", "exec sleep 60"], timeoutMs: 300 });
    assert.equal(result.endStatus, undefined);
    assert.match(result.failure!, /no end report within 300 ms/);
  });

  it("a guest that exits without an end report is a failure naming its exit", async () => {
    const result = await bootGuest({ qemu: "sh", args: ["-c", "exit 7"], timeoutMs: 20_000 });
    assert.match(result.failure!, /QEMU exited \(7\) before the end report/);
  });
});

describe("InitramfsTree", () => {
  it("writes a newc cpio holding the files, texts and npm packages staged, owned by root", () => {
    const dir = mkdtempSync(join(tmpdir(), "runner-test-"));
    try {
      writeFileSync(join(dir, "init"), "#!/bin/sh\n");
      execFileSync("sh", [
        "-c",
        `mkdir -p '${dir}/package' && echo '{}' > '${dir}/package/package.json' && tar -czf '${dir}/p.tgz' -C '${dir}' package`,
      ]);
      const cpio = new InitramfsTree()
        .file(join(dir, "init"), "init", 0o755)
        .text("vplane/package.json", "{}")
        .npmPackage(join(dir, "p.tgz"), "vplane/node_modules/p")
        .write();
      try {
        const listing = execFileSync("sh", ["-c", `cpio -tv < '${cpio}' 2>/dev/null`], { encoding: "utf8" });
        assert.match(listing, /-rwxr-xr-x .* root +root .* init\n/);
        assert.match(listing, / vplane\/package\.json\n/);
        assert.match(listing, / vplane\/node_modules\/p\/package\.json\n/);
      } finally {
        rmSync(dirname(cpio), { recursive: true, force: true });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("findArtefacts", () => {
  it("names the missing manifest or the missing file, with the command that prepares it", () => {
    const cache = mkdtempSync(join(tmpdir(), "runner-cache-"));
    try {
      const none = findArtefacts("t.json", "run prepare.sh", cache);
      assert.equal(none.found, false);
      assert.match(!none.found ? none.reason : "", /t\.json does not exist: run prepare\.sh/);
      writeFileSync(join(cache, "t.json"), JSON.stringify({ kernel: join(cache, "vmlinux") }));
      const missing = findArtefacts("t.json", "run prepare.sh", cache);
      assert.match(!missing.found ? missing.reason : "", /kernel \(.*vmlinux\) is missing/);
      writeFileSync(join(cache, "vmlinux"), "");
      assert.equal(findArtefacts("t.json", "run prepare.sh", cache).found, true);
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });
});
