import { closeSync, fstatSync, ftruncateSync, mkdirSync, openSync, readSync, writeSync } from "node:fs";
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
    // A new file may also need its folder (guest-ram/ in a fresh data folder).
    if (options.create !== false) mkdirSync(dirname(path), { recursive: true });
    const fd = openSync(path, options.create === false ? "r+" : "a+");
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
    // "a+" appends on write on Linux; reopen read-write at offsets now that the file exists.
    closeSync(fd);
    this.fd = openSync(path, "r+");
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
