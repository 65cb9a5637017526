import type { GuestMemory } from "@vplane/guest-memory";
import { encodeContextDescriptor } from "@vplane/smmuv3";

/**
 * Test support (the service's tests and the SMMU contract suite): what a guest kernel (or libqos
 * in QEMU's qtest) leaves in guest RAM: a 4K, 48-bit stage-1 table with 4 levels and one CD.
 * `toHost` says where an IPA sits in the RAM file.
 */
export class GuestTables {
  private next: number;
  readonly root: number;

  constructor(
    private readonly memory: GuestMemory,
    allocateFrom: number,
    private readonly toHost: (ipa: number) => number = (ipa) => ipa,
  ) {
    this.next = allocateFrom;
    this.root = this.allocate();
  }

  /** Maps one 4 KiB page; returns the IPA of its level-3 descriptor. */
  map(va: number, out: number): number {
    let table = this.root;
    for (const shift of [39, 30, 21]) {
      const at = table + (Math.floor(va / 2 ** shift) % 512) * 8;
      const d = this.memory.readU64LE(this.toHost(at));
      if ((d & 3n) === 3n) table = Number(d & 0xf_ffff_ffff_f000n);
      else {
        table = this.allocate();
        this.memory.writeU64LE(this.toHost(at), BigInt(table) | 3n);
      }
    }
    const leaf = table + (Math.floor(va / 4096) % 512) * 8;
    this.memory.writeU64LE(this.toHost(leaf), BigInt(out) | (1n << 10n) | 3n);
    return leaf;
  }

  /** The output address a level-3 descriptor holds (its bits [47:12]). */
  leafOutput(leafIpa: number): number {
    return Number(this.memory.readU64LE(this.toHost(leafIpa)) & 0xffff_ffff_f000n);
  }

  writeCd(ipa: number, asid: number): void {
    encodeContextDescriptor({ asid, t0sz: 16, tg0: 0, ttb0: this.root }).forEach((w, i) =>
      this.memory.writeU64LE(this.toHost(ipa) + i * 8, w),
    );
  }

  private allocate(): number {
    const t = this.next;
    this.next += 0x1000;
    return t;
  }
}

/** Guest STE words: V, Config (5 = S1, 4 = bypass), S1ContextPtr. */
export function steWords(config: number, contextPtr = 0): { ste0: bigint; ste1: bigint } {
  return { ste0: 1n | (BigInt(config) << 1n) | BigInt(contextPtr), ste1: 0n };
}
