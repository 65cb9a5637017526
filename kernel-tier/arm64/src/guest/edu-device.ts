import { readSync, writeSync } from "node:fs";
import { MappedRegion, regionInfo } from "@vplane/host-kernel";

/** VFIO's region index of PCI config space (VFIO_PCI_CONFIG_REGION_INDEX). */
const CONFIG_REGION = 7;
/** PCI_COMMAND: memory space and bus master enable. */
const PCI_COMMAND = 0x04;
const PCI_COMMAND_MEMORY = 0x2;
const PCI_COMMAND_MASTER = 0x4;

/** QEMU's edu device (docs/specs/edu.rst): DMA registers in BAR0 and its 4 KiB buffer's bus address. */
const DMA_SOURCE = 0x80;
const DMA_TARGET = 0x88;
const DMA_COUNT = 0x90;
const DMA_COMMAND = 0x98;
const DMA_START = 1;
const DMA_TO_RAM = 2;
const EDU_BUFFER = 0x4_0000n;

/**
 * QEMU's `edu` PCI device through its VFIO cdev, as the assigned device whose DMA the SMMU
 * translates: bus mastering on, BAR0 mapped, and a DMA into its buffer or out of it at an IOVA.
 * edu starts a DMA 100 ms (virtual) after the command and clears the start bit when done.
 */
export class EduDevice {
  private readonly bar0: MappedRegion;

  constructor(private readonly deviceFd: number) {
    const config = regionInfo(deviceFd, CONFIG_REGION);
    const word = Buffer.alloc(2);
    readSync(deviceFd, word, 0, 2, Number(config.offset) + PCI_COMMAND);
    word.writeUInt16LE(word.readUInt16LE(0) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    writeSync(deviceFd, word, 0, 2, Number(config.offset) + PCI_COMMAND);
    const bar = regionInfo(deviceFd, 0);
    this.bar0 = MappedRegion.map(deviceFd, Number(bar.offset), Number(bar.size));
  }

  /** Reads `length` bytes at `iova` into the device's buffer. */
  async readFromRam(iova: bigint, length: number): Promise<void> {
    await this.dma(iova, EDU_BUFFER, length, DMA_START);
  }

  /** Writes `length` bytes of the device's buffer at `iova`. */
  async writeToRam(iova: bigint, length: number): Promise<void> {
    await this.dma(EDU_BUFFER, iova, length, DMA_START | DMA_TO_RAM);
  }

  close(): void {
    this.bar0.unmap();
  }

  private async dma(source: bigint, target: bigint, length: number, command: number): Promise<void> {
    this.bar0.store(DMA_SOURCE, 8, source);
    this.bar0.store(DMA_TARGET, 8, target);
    this.bar0.store(DMA_COUNT, 8, BigInt(length));
    this.bar0.store(DMA_COMMAND, 8, BigInt(command));
    const deadline = Date.now() + 10_000;
    while ((this.bar0.load(DMA_COMMAND, 8) & BigInt(DMA_START)) !== 0n) {
      if (Date.now() > deadline) throw new Error("edu DMA did not finish within 10 s");
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}
