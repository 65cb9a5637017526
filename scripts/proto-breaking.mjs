// `npm run proto:breaking [ref]`: `buf breaking` of proto/ against the previous commit (HEAD~1 by
// default). The against tree is extracted with `git archive`; the google/** protos vendored at
// build time (git-ignored) are copied beside it so imports resolve in both trees.
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ref = process.argv[2] ?? "HEAD~1";
const git = (args) => spawnSync("git", args, { encoding: "utf8" });

if (git(["rev-parse", "--verify", "--quiet", `${ref}^{commit}`]).status !== 0) {
  console.log(`proto:breaking: no commit ${ref} to compare against (first commit); skipped`);
  process.exit(0);
}
if (git(["cat-file", "-e", `${ref}:proto/buf.yaml`]).status !== 0) {
  console.log(`proto:breaking: ${ref} has no proto/ module yet; skipped`);
  process.exit(0);
}
if (!existsSync("proto/google")) {
  console.error("proto:breaking: proto/google is missing; run `npm run build` first (it vendors google/**)");
  process.exit(2);
}
const against = mkdtempSync(join(tmpdir(), "vplane-proto-against-"));
try {
  execFileSync("sh", ["-c", `git archive "${ref}" proto | tar -x -C "${against}"`], { stdio: "inherit" });
  cpSync("proto/google", join(against, "proto/google"), { recursive: true });
  const bin = ["libs/proto/node_modules/.bin", "node_modules/.bin", process.env.PATH].join(":");
  const result = spawnSync("buf", ["breaking", "proto", "--against", join(against, "proto")], {
    stdio: "inherit",
    env: { ...process.env, PATH: bin },
  });
  if (result.status !== 0) {
    console.error(`proto:breaking: proto/ breaks the API of ${ref} (buf breaking, FILE rules)`);
    process.exit(1);
  }
  console.log(`proto:breaking: proto/ is compatible with ${ref}`);
} finally {
  rmSync(against, { recursive: true, force: true });
}
