import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build, type Plugin } from "esbuild";

/**
 * A guest's Node entry and everything it imports (the project's compiled code) as one ES
 * module; koffi stays outside (a native module, shipped beside the bundle). `target` is the
 * guest's Node ("node20" for the ppc64le guest, whose newest Node on npm is 20.11). Returns the
 * bundle's path; the caller removes its folder. Modules whose path matches `sideEffectFree` are
 * bundled only for the exports used (esbuild's sideEffects: false): a service library's module
 * that reads its package.json when loaded (libs/service-kit's version.ts) is left out unless used.
 * `bundledDirname` is the __dirname bundled CommonJS modules see: those that load files of their
 * package at run time (grpc-health-check's, @grpc/reflection's, etcd3's .proto files) find them
 * relative to it, where the caller ships them.
 */
export async function bundleGuestEntry(
  entry: string,
  target: string,
  sideEffectFree?: RegExp,
  bundledDirname?: string,
): Promise<string> {
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
    plugins: sideEffectFree ? [withoutSideEffects(sideEffectFree)] : [],
    logLevel: "warning",
    // Bundled CommonJS dependencies call require(); give the ES module one.
    banner: {
      js:
        "import { createRequire as __vplaneRequire } from 'node:module'; const require = __vplaneRequire(import.meta.url);" +
        (bundledDirname ? ` const __dirname = ${JSON.stringify(bundledDirname)};` : ""),
    },
  });
  return outfile;
}

/** Marks every module whose resolved path matches `paths` as free of side effects. */
function withoutSideEffects(paths: RegExp): Plugin {
  const again = Symbol("resolving");
  return {
    name: "vplane-side-effect-free",
    setup(build) {
      build.onResolve({ filter: /.*/ }, async (args) => {
        if ((args.pluginData as { [again]?: boolean } | undefined)?.[again]) return undefined;
        const resolved = await build.resolve(args.path, {
          kind: args.kind,
          importer: args.importer,
          resolveDir: args.resolveDir,
          pluginData: { [again]: true },
        });
        if (resolved.errors.length > 0 || !paths.test(resolved.path)) return undefined;
        return { ...resolved, sideEffects: false };
      });
    },
  };
}
