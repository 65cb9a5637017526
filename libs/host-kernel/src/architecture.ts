/**
 * The kernel ABIs this library encodes. They differ in ioctl numbers (ioctl-encoding.ts), in a
 * few socket constants (SO_PEERCRED is 17 on x86_64 and arm64, 21 on powerpc) and in byte order
 * only where a platform is big-endian, which none of these is.
 */
export type KernelArchitecture = "x86_64" | "arm64" | "ppc64le";

export const KERNEL_ARCHITECTURES: readonly KernelArchitecture[] = ["x86_64", "arm64", "ppc64le"];

/** This process's kernel ABI, or undefined on a platform the library does not encode. */
export function hostArchitecture(
  arch: string = process.arch,
  endianness: string = endiannessOfHost(),
): KernelArchitecture | undefined {
  if (process.platform !== "linux") return undefined;
  if (arch === "x64") return "x86_64";
  if (arch === "arm64") return "arm64";
  if (arch === "ppc64" && endianness === "LE") return "ppc64le";
  return undefined;
}

function endiannessOfHost(): string {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? "LE" : "BE";
}
