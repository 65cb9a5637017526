// Runs a package's compiled tests (dist/test/**/*.test.js) with node's test runner. Only files
// named *.test.js are tests; support files and fixtures beside them are not run on their own.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";

const root = join(process.cwd(), "dist/test");
const files = readdirSync(root, { recursive: true, encoding: "utf8" })
  .filter((f) => f.endsWith(".test.js"))
  .map((f) => join(root, f))
  .sort();
if (files.length === 0) {
  console.error(`no *.test.js under ${root}`);
  process.exit(1);
}
const extra = process.argv.slice(2);
const result = spawnSync(process.execPath, ["--test", "--enable-source-maps", ...extra, ...files], {
  stdio: "inherit",
});
process.exit(result.status ?? 1);
