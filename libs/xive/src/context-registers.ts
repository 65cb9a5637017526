/** vCPUs whose TIMA registers share one chunk. */
const SERVERS_PER_CHUNK = 64;
/** Bytes of one vCPU's thread context registers: the four 16-byte rings (xive.md §5). */
export const CONTEXT_REGISTER_BYTES = 64;
export const CONTEXT_CHUNK_BYTES = SERVERS_PER_CHUNK * CONTEXT_REGISTER_BYTES;

/**
 * The TIMA registers of a device's vCPUs, by server, in chunks of 64 vCPUs (a chunk made when
 * its first vCPU connects): pre-copy compares a chunk with what it handed out in one memcmp
 * (issue 14, XiveChangeTracker) rather than 2,048 vCPUs' 64 bytes one by one, and reads the
 * registers of a chunk that differs from the chunk itself, for the servers it holds.
 */
export class ContextRegisters {
  /** Indexed by server >> 6. */
  readonly chunks: (Buffer | undefined)[] = [];
  /** Per chunk, which of its 64 servers have registers (a vCPU connected). */
  private readonly held: (Uint8Array | undefined)[] = [];

  /** Server `server`'s 64 bytes, a view into its chunk (made for a vCPU that connects). */
  of(server: number): Uint8Array {
    const c = ContextRegisters.chunkOf(server);
    const chunk = (this.chunks[c] ??= Buffer.from(new ArrayBuffer(CONTEXT_CHUNK_BYTES)));
    const slot = server % SERVERS_PER_CHUNK;
    (this.held[c] ??= new Uint8Array(SERVERS_PER_CHUNK))[slot] = 1;
    return new Uint8Array(chunk.buffer, slot * CONTEXT_REGISTER_BYTES, CONTEXT_REGISTER_BYTES);
  }

  /** The registers chunk `c` holds (views into it), ascending by server. */
  registersIn(c: number): { server: number; regs: Uint8Array }[] {
    const held = this.held[c];
    const chunk = this.chunks[c];
    const out: { server: number; regs: Uint8Array }[] = [];
    if (held === undefined || chunk === undefined) return out;
    for (let slot = 0; slot < SERVERS_PER_CHUNK; slot++) {
      if (held[slot] === 0) continue;
      const regs = new Uint8Array(chunk.buffer, slot * CONTEXT_REGISTER_BYTES, CONTEXT_REGISTER_BYTES);
      out.push({ server: c * SERVERS_PER_CHUNK + slot, regs });
    }
    return out;
  }

  /** The chunk server `server`'s registers are in. */
  static chunkOf(server: number): number {
    return Math.floor(server / SERVERS_PER_CHUNK);
  }
}
