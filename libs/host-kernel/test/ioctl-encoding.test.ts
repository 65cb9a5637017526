import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { hostArchitecture, ioctlNumber, kvmIoctls } from "../src/index.js";

describe("ioctl numbers are encoded per architecture", () => {
  it("powerpc's _IO sets direction bit 29: KVM_GET_API_VERSION is 0x2000AE00 there, 0xAE00 on x86_64 and arm64", () => {
    assert.equal(kvmIoctls("ppc64le").KVM_GET_API_VERSION.number, 0x2000ae00);
    assert.equal(kvmIoctls("x86_64").KVM_GET_API_VERSION.number, 0xae00);
    assert.equal(kvmIoctls("arm64").KVM_GET_API_VERSION.number, 0xae00);
  });

  it("_IOWR puts both direction bits on top (bits 30-31 generic, 30-31 of 3 on powerpc) and the size below", () => {
    // KVM_CREATE_DEVICE, struct kvm_create_device = 12 bytes.
    assert.equal(kvmIoctls("x86_64").KVM_CREATE_DEVICE.number, 0xc00caee0);
    assert.equal(kvmIoctls("ppc64le").KVM_CREATE_DEVICE.number, 0xc00caee0);
    // _IOW: write is 1 generic (bit 30), 4 on powerpc (bit 31).
    assert.equal(kvmIoctls("x86_64").KVM_SET_DEVICE_ATTR.number, 0x4018aee1);
    assert.equal(kvmIoctls("ppc64le").KVM_SET_DEVICE_ATTR.number, 0x8018aee1);
  });

  it("a size that does not fit the size field is refused (13 bits on powerpc, 14 elsewhere)", () => {
    assert.equal(ioctlNumber("x86_64", "read", 1, 2, 0x3fff) >>> 16, 0x8000 | 0x3fff);
    assert.throws(() => ioctlNumber("ppc64le", "read", 1, 2, 0x2000), RangeError);
    assert.throws(() => ioctlNumber("x86_64", "read", 1, 2, 0x4000), RangeError);
  });

  it("the host's ABI is recognised from process.arch and byte order", () => {
    assert.equal(hostArchitecture("x64", "LE"), "x86_64");
    assert.equal(hostArchitecture("arm64", "LE"), "arm64");
    assert.equal(hostArchitecture("ppc64", "LE"), "ppc64le");
    assert.equal(hostArchitecture("ppc64", "BE"), undefined);
    assert.equal(hostArchitecture("s390x", "BE"), undefined);
  });
});
