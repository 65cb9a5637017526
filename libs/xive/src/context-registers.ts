/** vCPUs whose TIMA registers share one chunk. */
const SERVERS_PER_CHUNK = 64;
/** Bytes of one vCPU's thread context registers: the four 16-byte rings (xive.md §5). */
export const CONTEXT_REGISTER_BYTES = 64;
export const CONTEXT_CHUNK_BYTES = SERVERS_PER_CHUNK * CONTEXT_REGISTER_BYTES;

/**
 * The TIMA registers of a device's vCPUs, by server, in chunks of 64 vCPUs (a chunk made when
 * its first vCPU connects): pre-copy compares a chunk with what it handed out in one memcmp
 * (issue 14, XiveChangeTracker) rather than 2,048 vCPUs' 64 bytes one by one.
 */
export class ContextRegisters {
  /** Indexed by server >> 6. */
  readonly chunks: (Buffer | undefined)[] = [];

  /** Server `server`'s 64 bytes, a view into its chunk. */
  of(server: number): Uint8Array {
    const c = Math.floor(server / SERVERS_PER_CHUNK);
    const chunk = (this.chunks[c] ??= Buffer.from(new ArrayBuffer(CONTEXT_CHUNK_BYTES)));
    const at = (server % SERVERS_PER_CHUNK) * CONTEXT_REGISTER_BYTES;
    return new Uint8Array(chunk.buffer, at, CONTEXT_REGISTER_BYTES);
  }

  /** The chunk server `server`'s registers are in. */
  static chunkOf(server: number): number {
    return Math.floor(server / SERVERS_PER_CHUNK);
  }
}
