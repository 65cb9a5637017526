// The VM's guest RAM file as the migration service reads (source) and writes (destination) it.
// Paths are relative to the data folder, which every service of a host shares (embedded: the
// same folder; containers: the guest-ram volume), so "guest-ram/{vm}.ram" names one file for all.
import { mkdir, open, type FileHandle } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";
import { VplaneError } from "@vplane/service-kit";

export function resolveRamPath(dataDir: string, path: string): string {
  return isAbsolute(path) ? path : join(dataDir, path);
}

/** Where an incoming VM's RAM lands on the destination, relative to the data folder. */
export function incomingRamPath(vm: string): string {
  return join("guest-ram", `${vm}.ram`);
}

/** Opens the source's RAM file for reading; its size must be the one the caller gave. */
export async function openRamForReading(path: string, sizeBytes: bigint): Promise<FileHandle> {
  let file: FileHandle;
  try {
    file = await open(path, "r");
  } catch (error) {
    throw new VplaneError({
      code: "FAILED_PRECONDITION",
      reason: "GUEST_MEMORY_UNREADABLE",
      field: "guest_memory.path",
      message: `cannot open guest RAM ${path}: ${(error as Error).message}`,
    });
  }
  const { size } = await file.stat();
  if (BigInt(size) !== sizeBytes) {
    await file.close();
    throw new VplaneError({
      code: "FAILED_PRECONDITION",
      reason: "GUEST_MEMORY_SIZE_MISMATCH",
      field: "guest_memory.size_bytes",
      message: `guest RAM ${path} is ${size} bytes, not ${sizeBytes}`,
    });
  }
  return file;
}

/** Creates the destination's RAM file, sized; ALREADY_EXISTS if one is there. */
export async function createRamFile(path: string, sizeBytes: bigint): Promise<FileHandle> {
  let file: FileHandle;
  try {
    await mkdir(dirname(path), { recursive: true });
    file = await open(path, "wx", 0o600);
  } catch (error) {
    const exists = (error as NodeJS.ErrnoException).code === "EEXIST";
    throw new VplaneError({
      code: exists ? "ALREADY_EXISTS" : "FAILED_PRECONDITION",
      reason: exists ? "GUEST_MEMORY_EXISTS" : "GUEST_MEMORY_UNWRITABLE",
      message: `cannot create guest RAM ${path}: ${(error as Error).message}`,
    });
  }
  await file.truncate(Number(sizeBytes));
  return file;
}
