import { DEFAULT_DIRTY_PAGE_SIZE, GuestMemoryBase } from "./guest-memory-base.js";

/** Backing chunk of the sparse memory: large enough that a walk or a queue stays in one chunk. */
const CHUNK_SIZE = 64 * 1024;

/**
 * In-memory guest RAM that allocates 64 KiB chunks on first write; unwritten memory reads as
 * zero, so a model test can declare a 1 TiB guest and touch a few pages.
 */
export class SparseGuestMemory extends GuestMemoryBase {
  private readonly chunks = new Map<number, Uint8Array>();

  constructor(size: number, options: { dirtyPageSize?: number } = {}) {
    super(size, options.dirtyPageSize ?? DEFAULT_DIRTY_PAGE_SIZE);
  }

  /** Number of 64 KiB chunks allocated so far. */
  get allocatedChunks(): number {
    return this.chunks.size;
  }

  protected readRaw(address: number, target: Uint8Array): void {
    let done = 0;
    while (done < target.length) {
      const at = address + done;
      const offset = at % CHUNK_SIZE;
      const n = Math.min(CHUNK_SIZE - offset, target.length - done);
      const chunk = this.chunks.get(at - offset);
      if (chunk) target.set(chunk.subarray(offset, offset + n), done);
      else target.fill(0, done, done + n);
      done += n;
    }
  }

  protected writeRaw(address: number, source: Uint8Array): void {
    let done = 0;
    while (done < source.length) {
      const at = address + done;
      const offset = at % CHUNK_SIZE;
      const n = Math.min(CHUNK_SIZE - offset, source.length - done);
      let chunk = this.chunks.get(at - offset);
      if (!chunk) {
        chunk = new Uint8Array(CHUNK_SIZE);
        this.chunks.set(at - offset, chunk);
      }
      chunk.set(source.subarray(done, done + n), offset);
      done += n;
    }
  }

  protected release(): void {
    this.chunks.clear();
  }
}
