import { hostArchitecture, type KernelArchitecture } from "./architecture.js";
import { Errno, KernelError } from "./errno.js";
import { requireLibc } from "./libc.js";
import { NativeBuffer, withNativeBuffer } from "./native-memory.js";

/**
 * Socket constants (sys/socket.h, asm-generic/socket.h). powerpc numbers some SOL_SOCKET options
 * differently (arch/powerpc/include/uapi/asm/socket.h): SO_PEERCRED is 21 there, 17 elsewhere.
 */
export function socketConstants(arch: KernelArchitecture) {
  return {
    AF_UNIX: 1,
    SOCK_STREAM: 1,
    SOCK_NONBLOCK: 0o4000,
    SOCK_CLOEXEC: 0o2000000,
    SOL_SOCKET: 1,
    SCM_RIGHTS: 1,
    SO_PEERCRED: arch === "ppc64le" ? 21 : 17,
    MSG_CTRUNC: 0x8,
    MSG_DONTWAIT: 0x40,
    MSG_NOSIGNAL: 0x4000,
    MSG_CMSG_CLOEXEC: 0x40000000,
  } as const;
}

/**
 * Struct layouts on the 64-bit Linux ABIs (the same on x86_64, arm64 and ppc64le; checked
 * against the headers by test/uapi-layouts.test.ts).
 */
export const SocketLayouts = {
  sockaddr_un: { size: 110, sun_family: 0, sun_path: 2, pathMax: 108 },
  iovec: { size: 16, iov_base: 0, iov_len: 8 },
  msghdr: {
    size: 56,
    msg_name: 0,
    msg_namelen: 8,
    msg_iov: 16,
    msg_iovlen: 24,
    msg_control: 32,
    msg_controllen: 40,
    msg_flags: 48,
  },
  cmsghdr: { size: 16, cmsg_len: 0, cmsg_level: 8, cmsg_type: 12, data: 16 },
  ucred: { size: 12, pid: 0, uid: 4, gid: 8 },
} as const;

/** Most fds one message carries (the kernel's SCM_MAX_FD is 253). */
export const MAX_FDS_PER_MESSAGE = 253;

const cmsgSpace = (dataBytes: number) => SocketLayouts.cmsghdr.size + Math.ceil(dataBytes / 8) * 8;

function constantsHere() {
  const arch = hostArchitecture();
  if (arch === undefined) throw new Error(`no socket constants for ${process.platform}-${process.arch}`);
  return socketConstants(arch);
}

function unixAddress(path: string): NativeBuffer {
  const encoded = new TextEncoder().encode(path);
  const layout = SocketLayouts.sockaddr_un;
  if (encoded.length >= layout.pathMax) {
    throw new RangeError(
      `a Unix socket path holds at most ${layout.pathMax - 1} bytes; '${path}' has ${encoded.length}`,
    );
  }
  const address = new NativeBuffer(layout.size);
  address.setU16(layout.sun_family, constantsHere().AF_UNIX);
  address.bytes.set(encoded, layout.sun_path);
  return address;
}

function newSocket(): number {
  const libc = requireLibc();
  const c = constantsHere();
  const fd = libc.socket(c.AF_UNIX, c.SOCK_STREAM | c.SOCK_CLOEXEC | c.SOCK_NONBLOCK, 0);
  if (fd < 0) throw new KernelError("socket", libc.errno());
  return fd;
}

/** A new non-blocking Unix stream socket given to `use` with `path`'s address; closed if `use` throws. */
function withSocketAt(path: string, use: (fd: number, address: NativeBuffer) => void): number {
  const fd = newSocket();
  const address = unixAddress(path);
  try {
    use(fd, address);
    return fd;
  } catch (error) {
    requireLibc().close(fd);
    throw error;
  } finally {
    address.free();
  }
}

/** A non-blocking listening Unix stream socket bound at `path` (which must not exist). */
export function listenUnix(path: string, backlog = 16): number {
  const libc = requireLibc();
  return withSocketAt(path, (fd, address) => {
    if (libc.bind(fd, address.address, SocketLayouts.sockaddr_un.size) < 0) {
      throw new KernelError(`bind ${path}`, libc.errno());
    }
    if (libc.listen(fd, backlog) < 0) throw new KernelError("listen", libc.errno());
  });
}

/** accept4 on a non-blocking listener: the connection's fd (non-blocking), or undefined if none waits. */
export function acceptUnix(listenFd: number): number | undefined {
  const libc = requireLibc();
  const c = constantsHere();
  const fd = libc.accept4(listenFd, 0, 0, c.SOCK_CLOEXEC | c.SOCK_NONBLOCK);
  if (fd >= 0) return fd;
  const errno = libc.errno();
  if (errno === Errno.EAGAIN) return undefined;
  throw new KernelError("accept4", errno);
}

/**
 * A connected non-blocking Unix stream socket to `path`. A Unix connect completes at once or
 * fails (EAGAIN when the listener's backlog is full; never EINPROGRESS).
 */
export function connectUnix(path: string): number {
  const libc = requireLibc();
  return withSocketAt(path, (fd, address) => {
    if (libc.connect(fd, address.address, SocketLayouts.sockaddr_un.size) < 0) {
      throw new KernelError(`connect ${path}`, libc.errno());
    }
  });
}

/** The process, user and group at the other end of a connected Unix socket (SO_PEERCRED). */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

export function peerCredentials(fd: number): PeerCredentials {
  const libc = requireLibc();
  const c = constantsHere();
  const layout = SocketLayouts.ucred;
  return withNativeBuffer(layout.size + 4, (buffer) => {
    buffer.setU32(layout.size, layout.size);
    if (libc.getsockopt(fd, c.SOL_SOCKET, c.SO_PEERCRED, buffer.address, buffer.address + layout.size) < 0) {
      throw new KernelError("getsockopt SO_PEERCRED", libc.errno());
    }
    return { pid: buffer.i32(layout.pid), uid: buffer.u32(layout.uid), gid: buffer.u32(layout.gid) };
  });
}

/** One sendmsg(2) carrying `data` and, as SCM_RIGHTS, `fds`; returns the bytes sent. */
export function sendWithFds(fd: number, data: Uint8Array, fds: readonly number[] = []): number {
  if (fds.length > MAX_FDS_PER_MESSAGE)
    throw new RangeError(`at most ${MAX_FDS_PER_MESSAGE} fds per message`);
  if (data.length === 0) throw new RangeError("a message carries at least one byte with its fds");
  const libc = requireLibc();
  const c = constantsHere();
  const m = SocketLayouts.msghdr;
  const controlSize = fds.length > 0 ? cmsgSpace(4 * fds.length) : 0;
  const block = new NativeBuffer(m.size + SocketLayouts.iovec.size + controlSize + data.length);
  try {
    const iov = m.size;
    const control = iov + SocketLayouts.iovec.size;
    const payload = control + controlSize;
    block.bytes.set(data, payload);
    block.setU64(iov + SocketLayouts.iovec.iov_base, block.address + payload);
    block.setU64(iov + SocketLayouts.iovec.iov_len, data.length);
    block.setU64(m.msg_iov, block.address + iov).setU64(m.msg_iovlen, 1);
    if (fds.length > 0) {
      const h = SocketLayouts.cmsghdr;
      block.setU64(control + h.cmsg_len, h.size + 4 * fds.length);
      block.setI32(control + h.cmsg_level, c.SOL_SOCKET).setI32(control + h.cmsg_type, c.SCM_RIGHTS);
      fds.forEach((passed, i) => block.setI32(control + h.data + 4 * i, passed));
      block.setU64(m.msg_control, block.address + control).setU64(m.msg_controllen, controlSize);
    }
    const sent = libc.sendmsg(fd, block.address, c.MSG_NOSIGNAL | c.MSG_DONTWAIT);
    if (sent < 0) throw new KernelError("sendmsg", libc.errno());
    return sent;
  } finally {
    block.free();
  }
}

/** What one recvmsg(2) returned: the bytes (empty at end of stream) and the fds received. */
export interface ReceivedMessage {
  data: Uint8Array;
  fds: number[];
  /** The sender passed more fds than `maxFds`; the kernel closed the rest (MSG_CTRUNC). */
  fdsTruncated: boolean;
}

/**
 * One non-blocking recvmsg(2) taking up to `maxBytes` and `maxFds` descriptors (received
 * close-on-exec); undefined when nothing is waiting (EAGAIN).
 */
export function receiveWithFds(fd: number, maxBytes: number, maxFds: number): ReceivedMessage | undefined {
  const libc = requireLibc();
  const c = constantsHere();
  const m = SocketLayouts.msghdr;
  const h = SocketLayouts.cmsghdr;
  const controlSize = maxFds > 0 ? cmsgSpace(4 * Math.min(maxFds, MAX_FDS_PER_MESSAGE)) : 0;
  const block = new NativeBuffer(m.size + SocketLayouts.iovec.size + controlSize + maxBytes);
  try {
    const iov = m.size;
    const control = iov + SocketLayouts.iovec.size;
    const payload = control + controlSize;
    block.setU64(iov + SocketLayouts.iovec.iov_base, block.address + payload);
    block.setU64(iov + SocketLayouts.iovec.iov_len, maxBytes);
    block.setU64(m.msg_iov, block.address + iov).setU64(m.msg_iovlen, 1);
    if (controlSize > 0)
      block.setU64(m.msg_control, block.address + control).setU64(m.msg_controllen, controlSize);
    const received = libc.recvmsg(fd, block.address, c.MSG_DONTWAIT | c.MSG_CMSG_CLOEXEC);
    if (received < 0) {
      const errno = libc.errno();
      if (errno === Errno.EAGAIN) return undefined;
      throw new KernelError("recvmsg", errno);
    }
    const fds: number[] = [];
    const controlLength = Number(block.u64(m.msg_controllen));
    // Walk every control message (CMSG_FIRSTHDR/CMSG_NXTHDR), keeping SCM_RIGHTS descriptors.
    for (let at = 0; at + h.size <= controlLength;) {
      const length = Number(block.u64(control + at + h.cmsg_len));
      if (length < h.size) break;
      if (
        block.i32(control + at + h.cmsg_level) === c.SOL_SOCKET &&
        block.i32(control + at + h.cmsg_type) === c.SCM_RIGHTS
      ) {
        for (let i = 0; i < (length - h.size) / 4; i++) fds.push(block.i32(control + at + h.data + 4 * i));
      }
      at += Math.ceil(length / 8) * 8;
    }
    return {
      data: block.bytes.slice(payload, payload + received),
      fds,
      fdsTruncated: (block.u32(m.msg_flags) & c.MSG_CTRUNC) !== 0,
    };
  } finally {
    block.free();
  }
}
