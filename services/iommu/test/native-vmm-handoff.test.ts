// The VMM → iommu handoff (docs/vmm-handoff.md) over this host's Unix socket: SCM_RIGHTS,
// SO_PEERCRED, the socket file's mode, and the fds' lifetime. Plain files stand in for the
// iommufd and the VFIO device cdevs (what the service does with them is the Arm kernel tier's:
// kernel-tier/arm64, the handoff scenario).
import assert from "node:assert/strict";
import { fstatSync, mkdtempSync, openSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { closeFd, connectUnix, nextHandoffMessage, sendHandoffMessage } from "@vplane/host-kernel";
import { SmmuHandoffServer, type SmmuHandoffOptions } from "../src/native-vmm-handoff.js";

describe("iommu VMM handoff", () => {
  let dir: string;
  const events: string[] = [];
  const log: SmmuHandoffOptions["log"] = (e) =>
    events.push(`${e.event}${e.smmu ? ` ${e.smmu}` : ""}${e.reason ? ` ${e.reason.split(":")[0]}` : ""}`);

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "smmu-handoff-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** What a VMM hands over: an "iommufd" and two "device cdevs" (files here). */
  function vmmFds(): { iommufd: number; devices: number[]; close(): void } {
    const open = (name: string) => openSync(join(dir, name), "w");
    const iommufd = open("iommu");
    const devices = [open("vfio0"), open("vfio1")];
    return { iommufd, devices, close: () => [iommufd, ...devices].forEach(closeFd) };
  }

  const adopt = (smmu = "smmu-0") => ({
    type: "adopt",
    version: 1,
    vm: "web-1",
    smmu,
    iommufd: 0,
    devices: [
      { streamId: 0x8, fd: 1 },
      { streamId: 0x10, fd: 2 },
    ],
  });

  /** A server on `socket` whose SMMU smmu-0 a VMM handed over (answered); `handed` is what it holds. */
  async function handedOver(socket: string) {
    const server = SmmuHandoffServer.listen(join(dir, socket), { log });
    const vmm = vmmFds();
    const conn = connectUnix(server.path);
    const close = () => {
      vmm.close();
      server.close();
    };
    try {
      sendHandoffMessage(conn, adopt(), [vmm.iommufd, ...vmm.devices]);
      await nextHandoffMessage(conn);
    } catch (error) {
      closeFd(conn);
      close();
      throw error;
    }
    return { server, vmm, conn, handed: server.smmu("vms/web-1/smmus/smmu-0")!, close };
  }

  it("the socket file is mode 0660 from the start; an allowed peer hands over its iommufd and device fds and the service holds copies of the same files by StreamID", async () => {
    const server = SmmuHandoffServer.listen(join(dir, "a.sock"), { log });
    const vmm = vmmFds();
    const conn = connectUnix(server.path);
    try {
      assert.equal(statSync(server.path).mode & 0o777, 0o660);
      sendHandoffMessage(conn, adopt(), [vmm.iommufd, ...vmm.devices]);
      const answer = await nextHandoffMessage(conn);
      assert.deepEqual(answer !== "closed" && answer.message, {
        type: "adopted",
        version: 1,
        vm: "web-1",
        smmu: "smmu-0",
      });
      const handed = server.smmu("vms/web-1/smmus/smmu-0")!;
      assert.equal(handed.peer.pid, process.pid);
      assert.equal(fstatSync(handed.fds.iommufd).ino, fstatSync(vmm.iommufd).ino);
      assert.deepEqual([...handed.fds.devices.keys()], [0x8, 0x10]);
      assert.equal(fstatSync(handed.fds.devices.get(0x10)!).ino, fstatSync(vmm.devices[1]!).ino);
      assert.equal(server.smmu("vms/web-1/smmus/other"), undefined);
    } finally {
      closeFd(conn);
      vmm.close();
      server.close();
    }
  });

  it("the VMM going away: the SMMU made on the fds is told while they are still open, then they are closed and the handoff dropped", async () => {
    const { server, vmm, conn, handed, close } = await handedOver("b.sock");
    try {
      const told = new Promise<boolean>((resolve) =>
        handed.whenGone(() => resolve(fstatSync(handed.fds.iommufd).ino === fstatSync(vmm.iommufd).ino)),
      );
      closeFd(conn);
      assert.equal(await told, true, "the listener ran while the service's copy of the iommufd was open");
      assert.equal(handed.gone, true);
      assert.throws(() => fstatSync(handed.fds.iommufd), /EBADF/);
      assert.throws(() => fstatSync(handed.fds.devices.get(0x8)!), /EBADF/);
      assert.equal(server.smmu("vms/web-1/smmus/smmu-0"), undefined);
      assert.ok(events.includes("vmm-gone vms/web-1/smmus/smmu-0"));
    } finally {
      close();
    }
  });

  it("released by the service (the SMMU deleted): the fds are closed, the VMM is told why and the connection ends", async () => {
    const { server, conn, handed, close } = await handedOver("c.sock");
    try {
      let told = false;
      handed.whenGone(() => (told = true));
      handed.release("vms/web-1/smmus/smmu-0 was deleted");
      const released = await nextHandoffMessage(conn);
      assert.deepEqual(released !== "closed" && released.message, {
        type: "released",
        vm: "web-1",
        smmu: "smmu-0",
        reason: "vms/web-1/smmus/smmu-0 was deleted",
      });
      assert.equal(await nextHandoffMessage(conn), "closed");
      assert.throws(() => fstatSync(handed.fds.iommufd), /EBADF/);
      assert.equal(server.smmu("vms/web-1/smmus/smmu-0"), undefined);
      assert.equal(told, false, "a release is not the VMM going away");
    } finally {
      closeFd(conn);
      close();
    }
  });

  it("a peer the service does not allow is refused (PERMISSION_DENIED, PEER_NOT_ALLOWED), logged, and its connection closed", async () => {
    const server = SmmuHandoffServer.listen(join(dir, "d.sock"), { log, allowPeer: (p) => p.uid === 12345 });
    const conn = connectUnix(server.path);
    try {
      const refused = await nextHandoffMessage(conn);
      assert.ok(refused !== "closed");
      assert.deepEqual(
        [refused.message.code, refused.message.reason],
        ["PERMISSION_DENIED", "PEER_NOT_ALLOWED"],
      );
      assert.equal(await nextHandoffMessage(conn), "closed");
      assert.ok(events.includes("refused PEER_NOT_ALLOWED"));
    } finally {
      closeFd(conn);
      server.close();
    }
  });

  it("bad messages are refused with their reason, their fds closed, nothing handed over", async () => {
    const server = SmmuHandoffServer.listen(join(dir, "e.sock"), { log });
    const cases: [Record<string, unknown>, string][] = [
      [{ ...adopt(), iommufd: 3 }, "FD_MISSING"],
      [{ ...adopt(), version: 2 }, "VERSION_UNSUPPORTED"],
      [{ ...adopt(), vm: "Web_1" }, "VM_ID_INVALID"],
      [{ ...adopt(), smmu: "" }, "SMMU_ID_INVALID"],
      [{ ...adopt(), devices: [] }, "MESSAGE_INVALID"],
      [{ ...adopt(), devices: [{ streamId: -1, fd: 1 }] }, "MESSAGE_INVALID"],
      [{ ...adopt(), devices: [{ streamId: 8, fd: 0 }] }, "MESSAGE_INVALID"],
      [
        {
          ...adopt(),
          devices: [
            { streamId: 8, fd: 1 },
            { streamId: 8, fd: 2 },
          ],
        },
        "DEVICE_DUPLICATE",
      ],
      [{ type: "vcpus" }, "MESSAGE_INVALID"],
    ];
    try {
      for (const [message, reason] of cases) {
        const vmm = vmmFds();
        const conn = connectUnix(server.path);
        sendHandoffMessage(conn, message, [vmm.iommufd, ...vmm.devices]);
        const refused = await nextHandoffMessage(conn);
        assert.ok(refused !== "closed");
        assert.equal(refused.message.reason, reason, JSON.stringify(message));
        assert.equal(await nextHandoffMessage(conn), "closed");
        assert.equal(server.smmu("vms/web-1/smmus/smmu-0"), undefined);
        closeFd(conn);
        vmm.close();
      }
    } finally {
      server.close();
    }
  });

  it("one SMMU's fds come from one connection: a second handoff of the same name, or a second on the same connection, is refused", async () => {
    const server = SmmuHandoffServer.listen(join(dir, "f.sock"), { log });
    const vmm = vmmFds();
    const first = connectUnix(server.path);
    const second = connectUnix(server.path);
    try {
      sendHandoffMessage(first, adopt(), [vmm.iommufd, ...vmm.devices]);
      await nextHandoffMessage(first);
      sendHandoffMessage(second, adopt(), [vmm.iommufd, ...vmm.devices]);
      const refused = await nextHandoffMessage(second);
      assert.ok(refused !== "closed");
      assert.equal(refused.message.reason, "SMMU_ALREADY_ADOPTED");
      sendHandoffMessage(first, adopt("smmu-1"), [vmm.iommufd, ...vmm.devices]);
      const again = await nextHandoffMessage(first);
      assert.ok(again !== "closed");
      assert.equal(again.message.reason, "ALREADY_ADOPTED");
      assert.equal(
        server.smmu("vms/web-1/smmus/smmu-0"),
        undefined,
        "the refused connection ended: the VMM is gone",
      );
    } finally {
      closeFd(first);
      closeFd(second);
      vmm.close();
      server.close();
    }
  });
});
