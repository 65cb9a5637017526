import type { GuestMemory } from "@vplane/guest-memory";
import type { TranslationResult } from "./translation-result.js";

/** One DMA's result: data read, doorbell writes, or the translation that stopped it. */
export interface DmaResult {
  outcome: "completed" | "fault" | "aborted" | "page-request";
  /** Read data (completed reads). */
  data?: Uint8Array;
  /** Writes that hit the bound MSI doorbell: the doorbell IPA and the bytes written. */
  msiWrites: { address: number; data: Uint8Array }[];
  /** The translation that stopped the DMA (outcome other than completed). */
  translation?: TranslationResult;
}

/** Translates one access of a transfer (the SMMU's translate for one stream and substream). */
export type TranslateAccess = (iova: bigint, write: boolean) => TranslationResult;

interface Piece {
  address: number;
  length: number;
  doorbell: boolean;
}

/**
 * A device's transfer through the SMMU, as a device model would issue it: translated mapping by
 * mapping (each translation says how far its mapping reaches), and carried out only when every
 * piece translated, so a transfer that faults anywhere moves nothing. Pieces that reach the bound
 * MSI doorbell are returned rather than written to RAM.
 */
export class DmaTransfer {
  constructor(
    private readonly memory: GuestMemory,
    private readonly translate: TranslateAccess,
  ) {}

  read(iova: bigint, length: number): DmaResult {
    const pieces = this.pieces(iova, length, false);
    if (!Array.isArray(pieces)) return pieces;
    const data = new Uint8Array(length);
    let at = 0;
    for (const p of pieces) {
      if (!p.doorbell) data.set(this.memory.read(p.address, p.length), at);
      at += p.length;
    }
    return { outcome: "completed", data, msiWrites: [] };
  }

  write(iova: bigint, data: Uint8Array): DmaResult {
    const pieces = this.pieces(iova, data.length, true);
    if (!Array.isArray(pieces)) return pieces;
    const msiWrites: DmaResult["msiWrites"] = [];
    let at = 0;
    for (const p of pieces) {
      const bytes = data.subarray(at, at + p.length);
      if (p.doorbell) msiWrites.push({ address: p.address, data: bytes.slice() });
      else this.memory.write(p.address, bytes);
      at += p.length;
    }
    return { outcome: "completed", msiWrites };
  }

  private pieces(iova: bigint, length: number, write: boolean): Piece[] | DmaResult {
    const pieces: Piece[] = [];
    let at = BigInt.asUintN(64, iova);
    let left = length;
    while (left > 0) {
      const t = this.translate(at, write);
      if (t.outcome !== "translated" && t.outcome !== "doorbell") {
        return { outcome: t.outcome, msiWrites: [], translation: t };
      }
      const unit = 2 ** t.sizeBits;
      const n = Math.min(left, unit - Number(at % BigInt(unit)));
      pieces.push({ address: t.address, length: n, doorbell: t.outcome === "doorbell" });
      at = BigInt.asUintN(64, at + BigInt(n));
      left -= n;
    }
    return pieces;
  }
}
