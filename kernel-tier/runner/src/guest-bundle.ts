import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";

/**
 * A guest's Node entry and everything it imports (the project's compiled code) as one ES
 * module; koffi stays outside (a native module, shipped beside the bundle). `target` is the
 * guest's Node ("node20" for the ppc64le guest, whose newest Node on npm is 20.11). Returns the
 * bundle's path; the caller removes its folder.
 */
export async function bundleGuestEntry(entry: string, target: string): Promise<string> {
  const outfile = join(mkdtempSync(join(tmpdir(), "vplane-guest-")), "guest.mjs");
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target,
    sourcemap: "inline",
    external: ["koffi"],
    logLevel: "warning",
    // Bundled CommonJS dependencies call require(); give the ES module one.
    banner: {
      js: "import { createRequire as __vplaneRequire } from 'node:module'; const require = __vplaneRequire(import.meta.url);",
    },
  });
  return outfile;
}
