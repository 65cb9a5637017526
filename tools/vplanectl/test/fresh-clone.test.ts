// Issue 15: the CLI works from a fresh clone. This repository's committed HEAD is cloned into a
// temporary folder and installed from npm's cache (which this checkout's own install filled;
// --prefer-offline: the lockfile records no download addresses, so npm may still ask the registry
// for a package document it has not cached); the install builds the tree (the root's prepare script) with turbo's cache shared, so
// unchanged packages are restored from it as any cached rebuild would. Then `npx vplanectl
// --version` and `--help` must work, on the pinned Node 24, and again after dist/ was deleted and
// restored from turbo's cache (which restores files without their run bits).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../../../../", import.meta.url));
const { version } = JSON.parse(readFileSync(join(root, "tools/vplanectl/package.json"), "utf8")) as {
  version: string;
};
const noRepository = existsSync(join(root, ".git")) ? undefined : `no git repository at ${root}`;
if (noRepository && process.env.CI === "true") throw new Error(`fresh-clone test: ${noRepository}`);
if (noRepository) console.error(`\n*** SKIPPED the fresh-clone test: ${noRepository} ***\n`);

/** This environment without what npm set for the script running us (npm_config_*, npm_lifecycle_*). */
const userEnvironment = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name)),
);

describe("a fresh clone", { skip: noRepository, timeout: 15 * 60_000 }, () => {
  const clone = join(mkdtempSync(join(tmpdir(), "vplane-clone-")), "vplane");
  after(() => rmSync(join(clone, ".."), { recursive: true, force: true }));
  // Within npm test, PATH starts with this checkout's node_modules/.bin: npm runs on Node 24.
  const sh = (command: string, timeoutMs = 60_000) =>
    run("sh", ["-c", command], {
      cwd: clone,
      timeout: timeoutMs,
      maxBuffer: 16 * 2 ** 20,
      env: { ...userEnvironment, TURBO_CACHE_DIR: join(root, ".turbo/cache") },
    });

  it("installs from the cache with no engine or install-script warning, and builds", async () => {
    await run("git", ["clone", "--quiet", root, clone], { timeout: 60_000 });
    const installed = await sh("npm ci --prefer-offline --no-audit --no-fund 2>&1", 10 * 60_000);
    assert.doesNotMatch(installed.stdout, /EBADENGINE|install-scripts|EBADPLATFORM/, installed.stdout);
    assert.ok(existsSync(join(clone, "tools/vplanectl/dist/src/main.js")), "the install built the CLI");
  });

  it("npx vplanectl --version and --help work right after the install, on Node 24", async () => {
    assert.equal((await sh("npx vplanectl --version")).stdout, `${version}\n`);
    assert.match((await sh("npx vplanectl --help")).stdout, /^vplanectl: [\s\S]*vplanectl smmus/);
    assert.match((await sh("npx node --version")).stdout, /^v24\./);
  });

  it("the command keeps its run bit after dist/ is restored from turbo's cache", async () => {
    rmSync(join(clone, "tools/vplanectl/dist"), { recursive: true });
    const rebuilt = await sh(
      "npx turbo run build --filter=@vplane/vplanectl --output-logs=hash-only 2>&1",
      5 * 60_000,
    );
    assert.match(rebuilt.stdout, /cache hit/, "restored, not rebuilt");
    assert.ok(statSync(join(clone, "tools/vplanectl/bin/vplanectl.js")).mode & 0o100);
    assert.equal((await sh("npx vplanectl --version")).stdout, `${version}\n`);
  });
});
