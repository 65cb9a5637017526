// The library against this host's real kernel: /dev/kvm where it exists, a memory file for
// mmap, a Unix socket pair for fd passing.
import assert from "node:assert/strict";
import {
  closeSync,
  existsSync,
  fstatSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  Errno,
  KernelError,
  KvmCap,
  KvmDeviceType,
  KvmLayouts,
  MappedRegion,
  acceptUnix,
  closeFd,
  connectUnix,
  hostArchitecture,
  ioctl,
  kernelCallsAvailability,
  kvmIoctls,
  listenUnix,
  openDevice,
  peerCredentials,
  receiveWithFds,
  sendWithFds,
  watchReadable,
  withNativeBuffer,
} from "../src/index.js";

const arch = hostArchitecture();

describe("kernel calls on this host", () => {
  it("the library loads here (koffi has a binary for linux-x64/arm64/ppc64)", () => {
    assert.deepEqual(kernelCallsAvailability(), { available: true, arch });
  });

  it("open of a missing device fails with a typed ENOENT naming the call", () => {
    assert.throws(
      () => openDevice("/dev/vplane-no-such-device"),
      (e: unknown) =>
        e instanceof KernelError &&
        e.errno === Errno.ENOENT &&
        e.errnoName === "ENOENT" &&
        e.call.includes("open"),
    );
  });

  it("close of a closed fd is EBADF", () => {
    const fd = openDevice("/dev/null");
    closeFd(fd);
    assert.throws(
      () => closeFd(fd),
      (e: unknown) => e instanceof KernelError && e.errno === Errno.EBADF,
    );
  });

  it("an ioctl the file does not know is ENOTTY with the request's uapi name", () => {
    const fd = openDevice("/dev/null");
    try {
      assert.throws(
        () => ioctl(fd, kvmIoctls(arch!).KVM_CHECK_EXTENSION, 1),
        (e: unknown) =>
          e instanceof KernelError && e.errno === Errno.ENOTTY && e.call === "KVM_CHECK_EXTENSION",
      );
    } finally {
      closeFd(fd);
    }
  });
});

const kvmSkip = existsSync("/dev/kvm")
  ? undefined
  : "no /dev/kvm on this host: SKIPPING the KVM error-path tests";
if (kvmSkip) process.stderr.write(`\n*** ${kvmSkip} ***\n\n`);

describe(
  "KVM through the library (x86_64 host: the XIVE device's honest error path)",
  { skip: kvmSkip || arch !== "x86_64" },
  () => {
    const k = kvmIoctls("x86_64");
    it("KVM_GET_API_VERSION is 12 and KVM_CHECK_EXTENSION(KVM_CAP_PPC_IRQ_XIVE = 169) is 0", () => {
      const kvm = openDevice("/dev/kvm");
      try {
        assert.equal(ioctl(kvm, k.KVM_GET_API_VERSION), 12);
        assert.equal(ioctl(kvm, k.KVM_CHECK_EXTENSION, KvmCap.KVM_CAP_PPC_IRQ_XIVE), 0);
      } finally {
        closeFd(kvm);
      }
    });

    it("KVM_CREATE_DEVICE(KVM_DEV_TYPE_XIVE) on an x86 VM fails ENODEV, and the struct is left as given", () => {
      const kvm = openDevice("/dev/kvm");
      let vm: number | undefined;
      try {
        vm = ioctl(kvm, k.KVM_CREATE_VM, 0);
        const L = KvmLayouts.kvm_create_device;
        withNativeBuffer(L.size, (create) => {
          create.setU32(L.type, KvmDeviceType.KVM_DEV_TYPE_XIVE);
          assert.throws(
            () => ioctl(vm!, k.KVM_CREATE_DEVICE, create),
            (e: unknown) =>
              e instanceof KernelError && e.errno === Errno.ENODEV && e.call === "KVM_CREATE_DEVICE",
          );
          assert.equal(create.u32(L.fd), 0);
        });
      } finally {
        if (vm !== undefined) closeFd(vm);
        closeFd(kvm);
      }
    });
  },
);

describe("mmap through the library", () => {
  it("a shared mapping sees and makes the file's bytes, each access exactly its size, big-endian on request", () => {
    const dir = mkdtempSync(join(tmpdir(), "host-kernel-"));
    const file = join(dir, "memory");
    try {
      writeFileSync(file, Buffer.alloc(65536));
      const fd = openSync(file, "r+");
      const region = MappedRegion.map(fd, 0, 65536);
      try {
        region.store(8, 8, 0x1122334455667788n, "big");
        region.store(16, 4, 0xaabbccddn);
        const bytes = readFileSync(file);
        assert.deepEqual([...bytes.subarray(8, 16)], [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
        assert.equal(bytes.readUInt32LE(16), 0xaabbccdd);
        assert.equal(region.load(8, 8, "big"), 0x1122334455667788n);
        assert.equal(region.load(8, 2, "big"), 0x1122n);
        assert.equal(region.load(8, 1), 0x11n);
        assert.throws(() => region.load(9, 8), RangeError, "a misaligned access is refused");
        assert.throws(() => region.load(65536, 1), RangeError);
      } finally {
        region.unmap();
        closeSync(fd);
      }
      assert.throws(() => region.load(0, 1), /unmapped/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("mmap of an fd that is not open is a typed EBADF", () => {
    assert.throws(
      () => MappedRegion.map(1 << 20, 0, 4096),
      (e: unknown) => e instanceof KernelError && e.errno === Errno.EBADF && e.call === "mmap",
    );
  });
});

describe("fd passing over a Unix socket", () => {
  it("an fd sent with SCM_RIGHTS arrives as a new fd of the same file; SO_PEERCRED names this process", async () => {
    const dir = mkdtempSync(join(tmpdir(), "host-kernel-"));
    const path = join(dir, "handoff.sock");
    const listener = listenUnix(path);
    const client = connectUnix(path);
    const server = acceptUnix(listener)!;
    const passed = openSync(join(dir, "passed"), "w");
    try {
      assert.ok(statSync(path).isSocket());
      assert.deepEqual(peerCredentials(server), {
        pid: process.pid,
        uid: process.getuid!(),
        gid: process.getgid!(),
      });
      assert.equal(receiveWithFds(server, 64, 4), undefined, "nothing waiting: undefined, not a block");
      const readable = new Promise<void>((resolve) => {
        const watch = watchReadable(server, () => {
          watch.close();
          resolve();
        });
      });
      assert.equal(sendWithFds(client, new TextEncoder().encode("vm"), [passed]), 2);
      await readable;
      const message = receiveWithFds(server, 64, 4)!;
      assert.equal(new TextDecoder().decode(message.data), "vm");
      assert.equal(message.fds.length, 1);
      assert.notEqual(message.fds[0], passed);
      assert.equal(fstatSync(message.fds[0]!).ino, fstatSync(passed).ino);
      assert.equal(message.fdsTruncated, false);
      closeFd(message.fds[0]!);
      // More fds than the receiver makes room for (room for 1 is CMSG_SPACE(4) = 24 bytes, which
      // holds 2): MSG_CTRUNC, the kernel closes the rest.
      sendWithFds(client, new Uint8Array([1]), [passed, passed, passed]);
      const truncated = receiveWithFds(server, 64, 1)!;
      assert.equal(truncated.fdsTruncated, true);
      truncated.fds.forEach(closeFd);
      // The peer hangs up: end of stream is an empty message.
      closeFd(client);
      assert.equal(receiveWithFds(server, 64, 1)!.data.length, 0);
    } finally {
      closeSync(passed);
      closeFd(server);
      closeFd(listener);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("connecting where nobody listens is ENOENT / ECONNREFUSED, typed", () => {
    assert.throws(
      () => connectUnix(join(tmpdir(), `nobody-${process.pid}.sock`)),
      (e: unknown) => e instanceof KernelError && e.errno === Errno.ENOENT,
    );
  });
});
