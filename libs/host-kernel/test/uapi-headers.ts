// Reads constants, struct sizes and offsets out of an architecture's uapi and libc headers
// without running anything built for it: a generated C file puts every expression into one
// `unsigned long long` array, the architecture's cross compiler turns it into assembly (-S), and
// the array's .quad / .8byte / .xword directives are read back in order.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KernelArchitecture } from "../src/index.js";

/** The C compiler for each ABI, as Debian names it (gcc-<triplet> packages). */
const COMPILERS: Record<KernelArchitecture, string[]> = {
  x86_64: process.arch === "x64" ? ["gcc", "x86_64-linux-gnu-gcc"] : ["x86_64-linux-gnu-gcc"],
  arm64: process.arch === "arm64" ? ["gcc", "aarch64-linux-gnu-gcc"] : ["aarch64-linux-gnu-gcc"],
  ppc64le: ["powerpc64le-linux-gnu-gcc"],
};

const DEBIAN_PACKAGES: Record<KernelArchitecture, string> = {
  x86_64: "gcc linux-libc-dev",
  arm64: "gcc-aarch64-linux-gnu libc6-dev-arm64-cross linux-libc-dev-arm64-cross",
  ppc64le: "gcc-powerpc64le-linux-gnu libc6-dev-ppc64el-cross linux-libc-dev-ppc64el-cross",
};

export function compilerFor(arch: KernelArchitecture): string | undefined {
  return COMPILERS[arch].find((cc) => spawnSync(cc, ["--version"], { stdio: "ignore" }).status === 0);
}

/**
 * For `describe(..., { skip })`: undefined when the architecture's compiler is installed, else a
 * loud reason to skip. Under CI=true a missing compiler is an error: .ci/run installs them.
 */
export function headersSkipReason(arch: KernelArchitecture): string | undefined {
  if (compilerFor(arch) !== undefined) return undefined;
  const reason = `no C compiler for ${arch}: SKIPPING its uapi header checks (Debian: apt-get install ${DEBIAN_PACKAGES[arch]})`;
  if (process.env.CI === "true") throw new Error(`${reason}; CI=true, so this is a failure`);
  process.stderr.write(`\n*** ${reason} ***\n\n`);
  return reason;
}

/** Evaluates each C expression for `arch` after `includes`; values keyed like `expressions`. */
export function readHeaderValues<K extends string>(
  arch: KernelArchitecture,
  includes: string[],
  expressions: Record<K, string>,
  /** Searched before the compiler's own headers (a kernel's `make headers_install` output). */
  includeDirs: string[] = [],
): Record<K, bigint> {
  const cc = compilerFor(arch);
  if (cc === undefined) throw new Error(`no C compiler for ${arch}`);
  const names = Object.keys(expressions) as K[];
  const source = [
    "#define _GNU_SOURCE",
    "#include <stddef.h>",
    ...includes.map((h) => `#include <${h}>`),
    "const unsigned long long vplane_values[] = {",
    ...names.map((name) => `  (unsigned long long)(${expressions[name]}), /* ${name} */`),
    "};",
  ].join("\n");
  const dir = mkdtempSync(join(tmpdir(), "uapi-"));
  try {
    const file = join(dir, "values.c");
    writeFileSync(file, source);
    const out = spawnSync(cc, [...includeDirs.map((d) => `-I${d}`), "-S", "-O0", "-o", "-", file], {
      encoding: "utf8",
    });
    if (out.status !== 0) throw new Error(`${cc} failed:\n${out.stderr}`);
    const values = [...out.stdout.matchAll(/^\s*\.(?:quad|8byte|xword)\s+(-?\d+)\s*$/gm)].map((m) =>
      BigInt.asUintN(64, BigInt(m[1]!)),
    );
    if (values.length !== names.length) {
      throw new Error(`expected ${names.length} values from ${cc}, read ${values.length}`);
    }
    return Object.fromEntries(names.map((name, i) => [name, values[i]!])) as Record<K, bigint>;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** C expressions for `sizeof` and every `offsetof` of a layout record. */
export function layoutExpressions(
  struct: string,
  layout: Record<string, number>,
  skip: string[] = [],
): Record<string, string> {
  const out: Record<string, string> = { [`${struct}.size`]: `sizeof(struct ${struct})` };
  for (const field of Object.keys(layout)) {
    if (field === "size" || skip.includes(field)) continue;
    out[`${struct}.${field}`] = `offsetof(struct ${struct}, ${field})`;
  }
  return out;
}

export function layoutValues(
  struct: string,
  layout: Record<string, number>,
  skip: string[] = [],
): Record<string, bigint> {
  const out: Record<string, bigint> = {};
  for (const [field, value] of Object.entries(layout)) {
    if (skip.includes(field)) continue;
    out[`${struct}.${field}`] = BigInt(value);
  }
  return out;
}

export const asBig = (record: Record<string, number | bigint>, prefix = ""): Record<string, bigint> =>
  Object.fromEntries(Object.entries(record).map(([k, v]) => [`${prefix}${k}`, BigInt(v)]));
