import { SparseGuestMemory } from "@vplane/guest-memory";

/** Test support: sparse guest RAM that hands every write (address, length) to `onWrite` first. */
export class RecordingGuestMemory extends SparseGuestMemory {
  onWrite: (address: number, length: number) => void = () => undefined;

  protected override writeRaw(address: number, source: Uint8Array): void {
    this.onWrite(address, source.length);
    super.writeRaw(address, source);
  }
}
