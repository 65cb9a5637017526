// The VMM → service handoff over a Unix socket (SCM_RIGHTS, SO_PEERCRED), against this host's
// kernel: a real KVM VM and vCPU where /dev/kvm exists, else plain files stand in for them.
import assert from "node:assert/strict";
import { existsSync, fstatSync, mkdtempSync, openSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { closeFd, connectUnix, ioctl } from "@vplane/host-kernel";
import { KvmVm } from "../src/native-kvm-vm.js";
import { VmmHandoffServer, type HandoffOptions } from "../src/native-vmm-handoff.js";
import { nextFrame, sendFrame } from "./vmm-handoff-client.js";

describe("VMM handoff", () => {
  let dir: string;
  const events: string[] = [];
  const log: HandoffOptions["log"] = (e) =>
    events.push(`${e.event}${e.vm ? ` ${e.vm}` : ""}${e.reason ? ` ${e.reason.split(":")[0]}` : ""}`);

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "handoff-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** A VM fd and a vCPU fd: real KVM ones where /dev/kvm exists. */
  function vmmFds(): { vmFd: number; vcpuFd: number; close(): void } {
    if (existsSync("/dev/kvm")) {
      const vm = KvmVm.create();
      const vcpuFd = vm.vcpu(0);
      return { vmFd: vm.vmFd, vcpuFd, close: () => vm.close() };
    }
    const vmFd = openSync(join(dir, "vm"), "w");
    const vcpuFd = openSync(join(dir, "vcpu"), "w");
    return { vmFd, vcpuFd, close: () => [vmFd, vcpuFd].forEach(closeFd) };
  }

  it("the socket is mode 0660; an allowed peer hands over its VM and vCPU fds and the service holds copies of the same files", async () => {
    const server = VmmHandoffServer.listen(join(dir, "a.sock"), { log });
    const vmm = vmmFds();
    const conn = connectUnix(server.path);
    try {
      assert.equal(statSync(server.path).mode & 0o777, 0o660);
      sendFrame(conn, { type: "adopt", version: 1, vm: "web-1", vmFd: 0, vcpus: [{ vcpuId: 0, fd: 1 }] }, [
        vmm.vmFd,
        vmm.vcpuFd,
      ]);
      const answer = await nextFrame(conn);
      assert.deepEqual(answer !== "closed" && answer.message, { type: "adopted", version: 1, vm: "web-1" });
      const adopted = server.vm("web-1")!;
      assert.equal(adopted.peer.pid, process.pid);
      assert.equal(fstatSync(adopted.kvm.vmFd).ino, fstatSync(vmm.vmFd).ino);
      assert.equal(fstatSync(adopted.kvm.vcpu(0)).ino, fstatSync(vmm.vcpuFd).ino);
      if (existsSync("/dev/kvm")) {
        // The adopted VM fd is the VMM's VM: KVM answers on it (KVM_CHECK_EXTENSION on a VM fd).
        assert.ok(ioctl(adopted.kvm.vmFd, adopted.kvm.ioctls.KVM_CHECK_EXTENSION, 1) >= 0);
      }

      // The device fd comes back over the same connection.
      const device = openSync(join(dir, "device"), "w");
      adopted.sendDevice(device, "vms/web-1/controller");
      const back = await nextFrame(conn);
      assert.ok(back !== "closed");
      assert.deepEqual(back.message, {
        type: "device",
        vm: "web-1",
        controller: "vms/web-1/controller",
        esbPageOffset: 4,
        timaPageOffset: 0,
      });
      assert.equal(fstatSync(back.fds[0]!).ino, fstatSync(device).ino);
      back.fds.forEach(closeFd);
      closeFd(device);
    } finally {
      closeFd(conn);
      vmm.close();
      server.close();
    }
  });

  it("the VMM going away (its end closed) is seen: the VM is dropped, its fds closed here, the listener told", async () => {
    const server = VmmHandoffServer.listen(join(dir, "b.sock"), { log });
    const vmm = vmmFds();
    const conn = connectUnix(server.path);
    const gone = new Promise<string>((resolve) => server.whenVmmGone((vm) => resolve(vm.vm)));
    try {
      sendFrame(conn, { type: "adopt", version: 1, vm: "web-2", vmFd: 0, vcpus: [] }, [vmm.vmFd, vmm.vcpuFd]);
      await nextFrame(conn);
      const adopted = server.vm("web-2")!;
      closeFd(conn);
      assert.equal(await gone, "web-2");
      assert.equal(adopted.gone, true);
      assert.equal(server.vm("web-2"), undefined);
      assert.throws(() => fstatSync(adopted.kvm.vmFd), /EBADF/, "the service's copy of the VM fd is closed");
      assert.ok(events.includes("vmm-gone web-2"));
    } finally {
      vmm.close();
      server.close();
    }
  });

  it("a peer the service does not allow is refused (PERMISSION_DENIED, PEER_NOT_ALLOWED), logged, and its connection closed", async () => {
    const server = VmmHandoffServer.listen(join(dir, "c.sock"), {
      log,
      allowPeer: (peer) => peer.uid === 12345,
    });
    const conn = connectUnix(server.path);
    try {
      const refused = await nextFrame(conn);
      assert.ok(refused !== "closed");
      assert.deepEqual(
        [refused.message.code, refused.message.reason],
        ["PERMISSION_DENIED", "PEER_NOT_ALLOWED"],
      );
      assert.equal(await nextFrame(conn), "closed");
      assert.ok(events.includes("refused PEER_NOT_ALLOWED"));
    } finally {
      closeFd(conn);
      server.close();
    }
  });

  it("a message naming an fd it did not carry, or an unknown type, is refused and nothing is adopted", async () => {
    const server = VmmHandoffServer.listen(join(dir, "d.sock"), { log });
    try {
      for (const [message, reason] of [
        [{ type: "adopt", version: 1, vm: "web-3", vmFd: 2, vcpus: [] }, "FD_MISSING"],
        [{ type: "adopt", version: 2, vm: "web-3", vmFd: 0 }, "VERSION_UNSUPPORTED"],
        [{ type: "surprise" }, "MESSAGE_INVALID"],
      ] as const) {
        const conn = connectUnix(server.path);
        const file = openSync(join(dir, "x"), "w");
        sendFrame(conn, message, [file]);
        const refused = await nextFrame(conn);
        assert.ok(refused !== "closed");
        assert.equal(refused.message.reason, reason);
        assert.equal(server.vm("web-3"), undefined);
        closeFd(file);
        closeFd(conn);
      }
    } finally {
      server.close();
    }
  });
});
