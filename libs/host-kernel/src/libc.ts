import { createRequire } from "node:module";
import type KoffiModule from "koffi";

/**
 * The C library functions this package calls, bound through koffi. Every pointer crosses as an
 * address (uintptr_t): the structs are laid out by hand in native memory (native-memory.ts), so
 * one binding serves every architecture and the layouts are checked against the headers by tests.
 * ioctl is declared with a fixed third argument rather than as variadic: on x86_64 and arm64 an
 * integer argument travels the same way, and on ppc64le koffi always reserves the parameter save
 * area a variadic callee may spill into (abi/ppc64.cc keeps at least 36 doublewords of stack).
 */
export interface Libc {
  open(path: string, flags: number, mode: number): number;
  close(fd: number): number;
  ioctl(fd: number, request: number, arg: number | bigint): number;
  mmap(
    address: number,
    length: number,
    prot: number,
    flags: number,
    fd: number,
    offset: number,
  ): number | bigint;
  munmap(address: number, length: number): number;
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, address: number, length: number): number;
  listen(fd: number, backlog: number): number;
  accept4(fd: number, address: number, lengthAddress: number, flags: number): number;
  connect(fd: number, address: number, length: number): number;
  sendmsg(fd: number, message: number, flags: number): number;
  recvmsg(fd: number, message: number, flags: number): number;
  getsockopt(fd: number, level: number, name: number, value: number, lengthAddress: number): number;
  /** The host's page size (64 KiB on Debian's ppc64el kernels, 4 KiB on x86_64). */
  getpagesize(): number;
  /** The calling thread's errno, read right after a call that failed. */
  errno(): number;
  koffi: typeof KoffiModule;
}

export type LibcAvailability = { available: true; libc: Libc } | { available: false; reason: string };

let cached: LibcAvailability | undefined;

/**
 * Loads koffi and binds the C library, once. Where koffi has no prebuilt binary for this
 * platform, or the C library cannot be opened, the answer says why instead of throwing: a
 * service reports its native backend unavailable and goes on.
 */
export function loadLibc(): LibcAvailability {
  cached ??= bind();
  return cached;
}

function bind(): LibcAvailability {
  let koffi: typeof KoffiModule;
  try {
    koffi = createRequire(import.meta.url)("koffi") as typeof KoffiModule;
  } catch (error) {
    return {
      available: false,
      reason: `koffi does not load on ${process.platform}-${process.arch} (Node ${process.version}): ${messageOf(error)}`,
    };
  }
  try {
    const lib = koffi.load(process.platform === "linux" ? "libc.so.6" : null);
    const fn = <T>(declaration: string): T => lib.func(declaration) as T;
    return {
      available: true,
      libc: {
        open: fn("int open(const char *path, int flags, uint32_t mode)"),
        close: fn("int close(int fd)"),
        ioctl: fn("int ioctl(int fd, unsigned long request, unsigned long arg)"),
        mmap: fn(
          "uintptr_t mmap(uintptr_t addr, size_t length, int prot, int flags, int fd, int64_t offset)",
        ),
        munmap: fn("int munmap(uintptr_t addr, size_t length)"),
        socket: fn("int socket(int domain, int type, int protocol)"),
        bind: fn("int bind(int fd, uintptr_t addr, uint32_t length)"),
        listen: fn("int listen(int fd, int backlog)"),
        accept4: fn("int accept4(int fd, uintptr_t addr, uintptr_t length, int flags)"),
        connect: fn("int connect(int fd, uintptr_t addr, uint32_t length)"),
        sendmsg: fn("intptr_t sendmsg(int fd, uintptr_t msg, int flags)"),
        recvmsg: fn("intptr_t recvmsg(int fd, uintptr_t msg, int flags)"),
        getsockopt: fn("int getsockopt(int fd, int level, int name, uintptr_t value, uintptr_t length)"),
        getpagesize: fn("int getpagesize()"),
        errno: () => koffi.errno(),
        koffi,
      },
    };
  } catch (error) {
    return {
      available: false,
      reason: `the C library could not be bound through koffi: ${messageOf(error)}`,
    };
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Thrown by a kernel call on a platform where the library could not be loaded. */
export class KernelCallsUnavailableError extends Error {
  constructor(readonly reason: string) {
    super(`kernel calls are unavailable: ${reason}`);
    this.name = "KernelCallsUnavailableError";
  }
}

/** The bound C library, or KernelCallsUnavailableError naming why it is unavailable. */
export function requireLibc(): Libc {
  const loaded = loadLibc();
  if (!loaded.available) throw new KernelCallsUnavailableError(loaded.reason);
  return loaded.libc;
}
