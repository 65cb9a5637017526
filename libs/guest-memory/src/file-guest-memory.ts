import {
  closeSync,
  constants,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import { DEFAULT_DIRTY_PAGE_SIZE, GuestMemoryBase } from "./guest-memory-base.js";
import { GuestMemoryError } from "./guest-memory-error.js";

/**
 * Guest RAM in one shared file, read and written at offsets (the role of QEMU's
 * memory-backend-file with share=on): every process that opens the same file sees the same
 * bytes, so the VMM, the interrupt controller and the IOMMU share one guest RAM.
 */
export class FileGuestMemory extends GuestMemoryBase {
  private readonly fd: number;

  /**
   * Opens (creating if needed) `path` and sizes it to `size` bytes. An existing file of another
   * size is refused: it belongs to a guest of another size.
   */
  constructor(
    readonly path: string,
    size: number,
    options: { dirtyPageSize?: number; create?: boolean } = {},
  ) {
    super(size, options.dirtyPageSize ?? DEFAULT_DIRTY_PAGE_SIZE);
    const fd = options.create === false ? openSync(path, "r+") : openCreating(path);
    const current = fstatSync(fd).size;
    if (current === 0) {
      ftruncateSync(fd, size);
    } else if (current !== size) {
      closeSync(fd);
      throw new GuestMemoryError(
        "BAD_SIZE",
        0,
        size,
        `guest RAM file ${path} holds ${current} bytes, expected ${size}`,
      );
    }
    this.fd = fd;
  }

  protected readRaw(address: number, target: Uint8Array): void {
    let done = 0;
    while (done < target.length) {
      const n = readSync(this.fd, target, done, target.length - done, address + done);
      if (n === 0) {
        target.fill(0, done);
        return;
      }
      done += n;
    }
  }

  protected writeRaw(address: number, source: Uint8Array): void {
    let done = 0;
    while (done < source.length)
      done += writeSync(this.fd, source, done, source.length - done, address + done);
  }

  protected release(): void {
    closeSync(this.fd);
  }
}

/**
 * Opens `path` read-write at offsets (neither appending nor truncating), creating it if missing
 * and, when that fails for a missing folder, the folder too (guest-ram/ in a fresh data folder).
 * One open when the folder exists: every VM create makes its RAM file here.
 */
function openCreating(path: string): number {
  const flags = constants.O_RDWR | constants.O_CREAT;
  try {
    return openSync(path, flags, 0o666);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    mkdirSync(dirname(path), { recursive: true });
    return openSync(path, flags, 0o666);
  }
}
