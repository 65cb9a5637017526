import { execFileSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";

/**
 * A guest's root file system, staged in a temporary folder and written as an uncompressed newc
 * cpio (the kernel unpacks it as the initramfs; compressing ~100 MB would cost more on an
 * emulated CPU than it saves). Paths are inside the guest ("/init", "/vplane/guest.mjs").
 */
export class InitramfsTree {
  readonly root: string;
  private readonly work: string;

  constructor() {
    this.work = mkdtempSync(join(tmpdir(), "vplane-initramfs-"));
    this.root = join(this.work, "root");
    for (const dir of ["bin", "lib", "proc", "sys", "dev", "tmp"])
      mkdirSync(join(this.root, dir), { recursive: true });
  }

  private at(guestPath: string): string {
    const path = join(this.root, guestPath);
    mkdirSync(dirname(path), { recursive: true });
    return path;
  }

  /** Copies a host file to `guestPath` (mode 0755 for programs). */
  file(hostPath: string, guestPath: string, mode = 0o644): this {
    const path = this.at(guestPath);
    copyFileSync(hostPath, path);
    chmodSync(path, mode);
    return this;
  }

  text(guestPath: string, content: string, mode = 0o644): this {
    const path = this.at(guestPath);
    writeFileSync(path, content);
    chmodSync(path, mode);
    return this;
  }

  /** Copies a host folder and everything in it to `guestPath`. */
  directory(hostPath: string, guestPath: string): this {
    cpSync(hostPath, this.at(guestPath), { recursive: true });
    return this;
  }

  /** Unpacks an npm tarball (`npm pack` output, files under package/) into `guestPath`. */
  npmPackage(tarball: string, guestPath: string): this {
    const into = this.at(guestPath);
    mkdirSync(into, { recursive: true });
    execFileSync("tar", ["-xzf", tarball, "-C", into, "--strip-components=1"]);
    return this;
  }

  /**
   * koffi's JavaScript (its package without sources and docs) at `guestPath`; the binary for the
   * guest's platform comes from its @koromix/koffi-<platform> package, added with npmPackage.
   */
  koffiJavaScript(guestPath: string): this {
    const entry = createRequire(import.meta.url).resolve("koffi");
    let dir = dirname(entry);
    while (!existsSync(join(dir, "package.json"))) dir = dirname(dir);
    // Its C++ sources and vendored headers are for building from source; the JavaScript stays.
    const keep = (source: string) =>
      !/\.(cc|hh|h|S|asm|inc|def|md|txt)$/.test(source) && !source.includes("/vendor");
    cpSync(dir, this.at(guestPath), { recursive: true, filter: keep });
    return this;
  }

  /**
   * The tier's Node entry under /vplane: the bundle as guest.mjs, a package.json making it an ES
   * module, koffi's JavaScript and its binary for the guest (`@koromix/koffi-<platform>`).
   */
  vplaneEntry(bundle: string, koffiTarball: string, koffiPlatform: string): this {
    return this.file(bundle, "vplane/guest.mjs")
      .text("vplane/package.json", JSON.stringify({ type: "module" }))
      .koffiJavaScript("vplane/node_modules/koffi")
      .npmPackage(koffiTarball, `vplane/node_modules/@koromix/koffi-${koffiPlatform}`);
  }

  /** Writes the cpio and removes the staged tree; the caller removes the cpio's folder (`dirname`). */
  write(): string {
    const cpio = join(this.work, "initrd.cpio");
    execFileSync("sh", ["-c", `cd '${this.root}' && find . | cpio -o -H newc -R 0:0 --quiet > '${cpio}'`]);
    rmSync(this.root, { recursive: true, force: true });
    return cpio;
  }
}

/**
 * Node's binary from a node-linux-<arch> npm tarball without its debug sections (roughly 20%
 * smaller), made once per tarball into `cache` with the architecture's `strip`.
 */
export function strippedNodeBinary(tarball: string, strip: string, cache: string): string {
  const stripped = join(cache, `${basename(tarball, ".tgz")}-node-stripped`);
  if (existsSync(stripped)) return stripped;
  const dir = mkdtempSync(join(tmpdir(), "vplane-node-"));
  try {
    execFileSync("tar", ["-xzf", tarball, "-C", dir, "package/bin/node"]);
    execFileSync(strip, ["-o", `${stripped}.tmp`, join(dir, "package", "bin", "node")]);
    renameSync(`${stripped}.tmp`, stripped);
    return stripped;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
