// Every number and struct layout this library encodes, checked against each ABI's headers
// (the host's for x86_64; Debian's cross headers for arm64 and ppc64le).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  Errno,
  KERNEL_ARCHITECTURES,
  KVM_CREATE_DEVICE_TEST,
  KVM_REG_PPC_VP_STATE,
  KVM_VM_PPC_HV,
  KvmCap,
  KvmDeviceType,
  KvmLayouts,
  KvmXive,
  KvmXiveEqLayout,
  Mmap,
  OpenFlags,
  SocketLayouts,
  kvmIoctls,
  socketConstants,
} from "../src/index.js";
import {
  asBig,
  headersSkipReason,
  layoutExpressions,
  layoutValues,
  readHeaderValues,
} from "./uapi-headers.js";

for (const arch of KERNEL_ARCHITECTURES) {
  describe(`uapi constants for ${arch} match the headers`, { skip: headersSkipReason(arch) }, () => {
    it("every KVM ioctl number is the header's (per-architecture _IOC encoding)", () => {
      const ours = kvmIoctls(arch);
      const names = Object.keys(ours) as (keyof typeof ours)[];
      const headers = readHeaderValues(arch, ["linux/kvm.h"], Object.fromEntries(names.map((n) => [n, n])));
      for (const name of names) assert.equal(BigInt(ours[name].number), headers[name], name);
    });

    it("KVM capabilities, device types and struct layouts are the header's", () => {
      const expressions = {
        ...Object.fromEntries(Object.keys(KvmCap).map((n) => [n, n])),
        ...Object.fromEntries(Object.keys(KvmDeviceType).map((n) => [n, n])),
        KVM_CREATE_DEVICE_TEST: "KVM_CREATE_DEVICE_TEST",
        ...layoutExpressions("kvm_create_device", KvmLayouts.kvm_create_device),
        ...layoutExpressions("kvm_device_attr", KvmLayouts.kvm_device_attr),
        ...layoutExpressions("kvm_enable_cap", KvmLayouts.kvm_enable_cap),
        ...layoutExpressions("kvm_one_reg", KvmLayouts.kvm_one_reg),
        ...layoutExpressions("kvm_userspace_memory_region", KvmLayouts.kvm_userspace_memory_region),
      };
      const headers = readHeaderValues(arch, ["linux/kvm.h"], expressions);
      assert.deepEqual(headers, {
        ...asBig(KvmCap),
        ...asBig(KvmDeviceType),
        KVM_CREATE_DEVICE_TEST: BigInt(KVM_CREATE_DEVICE_TEST),
        ...layoutValues("kvm_create_device", KvmLayouts.kvm_create_device),
        ...layoutValues("kvm_device_attr", KvmLayouts.kvm_device_attr),
        ...layoutValues("kvm_enable_cap", KvmLayouts.kvm_enable_cap),
        ...layoutValues("kvm_one_reg", KvmLayouts.kvm_one_reg),
        ...layoutValues("kvm_userspace_memory_region", KvmLayouts.kvm_userspace_memory_region),
      });
    });

    it("socket, open and mmap constants and the msghdr/cmsghdr/iovec/ucred/sockaddr_un layouts are the header's", () => {
      const c = socketConstants(arch);
      const expressions = {
        ...Object.fromEntries(Object.keys(c).map((n) => [n, n])),
        ...Object.fromEntries(Object.keys(OpenFlags).map((n) => [n, n])),
        ...Object.fromEntries(Object.keys(Mmap).map((n) => [n, n])),
        ...layoutExpressions("sockaddr_un", SocketLayouts.sockaddr_un, ["pathMax"]),
        "sockaddr_un.pathMax": "sizeof(((struct sockaddr_un *)0)->sun_path)",
        ...layoutExpressions("iovec", SocketLayouts.iovec),
        ...layoutExpressions("msghdr", SocketLayouts.msghdr),
        ...layoutExpressions("cmsghdr", SocketLayouts.cmsghdr, ["data"]),
        "cmsghdr.data": "CMSG_LEN(0)",
        ...layoutExpressions("ucred", SocketLayouts.ucred),
      };
      const headers = readHeaderValues(
        arch,
        ["sys/socket.h", "sys/un.h", "sys/uio.h", "fcntl.h", "sys/mman.h"],
        expressions,
      );
      assert.deepEqual(headers, {
        ...asBig(c),
        ...asBig(OpenFlags),
        ...asBig(Mmap),
        ...layoutValues("sockaddr_un", SocketLayouts.sockaddr_un),
        ...layoutValues("iovec", SocketLayouts.iovec),
        ...layoutValues("msghdr", SocketLayouts.msghdr),
        ...layoutValues("cmsghdr", SocketLayouts.cmsghdr),
        ...layoutValues("ucred", SocketLayouts.ucred),
      });
    });

    it("every errno named is the header's", () => {
      const headers = readHeaderValues(
        arch,
        ["errno.h"],
        Object.fromEntries(Object.keys(Errno).map((n) => [n, n])),
      );
      assert.deepEqual(headers, asBig(Errno));
    });
  });
}

describe(
  "the POWER9 XIVE device uapi matches the ppc64le headers",
  { skip: headersSkipReason("ppc64le") },
  () => {
    it("groups, attributes, value bits, mmap offsets, VP_STATE, KVM_VM_PPC_HV and kvm_ppc_xive_eq", () => {
      const headers = readHeaderValues("ppc64le", ["linux/kvm.h"], {
        ...Object.fromEntries(Object.keys(KvmXive).map((n) => [n, n])),
        KVM_REG_PPC_VP_STATE: "KVM_REG_PPC_VP_STATE",
        KVM_VM_PPC_HV: "KVM_VM_PPC_HV",
        ...layoutExpressions("kvm_ppc_xive_eq", KvmXiveEqLayout),
      });
      assert.deepEqual(headers, {
        ...asBig(KvmXive),
        KVM_REG_PPC_VP_STATE,
        KVM_VM_PPC_HV: BigInt(KVM_VM_PPC_HV),
        ...layoutValues("kvm_ppc_xive_eq", KvmXiveEqLayout),
      });
    });
  },
);
