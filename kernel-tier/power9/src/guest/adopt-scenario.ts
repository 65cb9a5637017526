import { openSync, writeFileSync } from "node:fs";
import { MappedRegion, closeFd, connectUnix, hostPageSize } from "@vplane/host-kernel";
import { KvmVm, NativeBackend, VmmHandoffServer } from "@vplane/interrupt-controller/native";
import { observe } from "./observe.js";
import { nextFromService, sendToService } from "./vmm-side.js";

const RAM_BYTES = 1 << 20;

/**
 * Adopt, end to end in the guest: a VMM (this process, its own VM with its RAM as memslot 0 and
 * a vCPU) hands its fds over the handoff socket; the native backend works on that VM and the
 * device fd goes back to the VMM, which maps the ESB pages itself; the VMM leaves and the
 * controller answers VMM_GONE. Observations: "adopt: ...".
 */
export async function adoptScenario(): Promise<void> {
  const ramPath = "/tmp/adopt.ram";
  writeFileSync(ramPath, new Uint8Array(RAM_BYTES));
  const vmm = KvmVm.create();
  const server = VmmHandoffServer.listen("/tmp/handoff.sock");
  let backend: NativeBackend | undefined;
  try {
    const ramFd = openSync(ramPath, "r+");
    const ram = MappedRegion.map(ramFd, 0, RAM_BYTES);
    vmm.setMemoryRegion(0, 0n, RAM_BYTES, ram.address);
    const vcpuFd = vmm.vcpu(0);
    const conn = connectUnix(server.path);
    sendToService(
      conn,
      { type: "adopt", version: 1, vm: "adopted", vmFd: 0, vcpus: [{ vcpuId: 0, fd: 1 }] },
      [vmm.vmFd, vcpuFd],
    );
    const answer = await nextFromService(conn);
    observe("adopt: the service's answer", () => (answer === "closed" ? "closed" : answer.message));
    const adopted = server.vm("adopted")!;
    backend = NativeBackend.create(
      { mode: "XIVE", nrServers: 2, nrIrqs: 4096 },
      { path: ramPath, bytes: RAM_BYTES },
      adopted.kvm,
    );
    adopted.sendDevice(backend.deviceFd, "vms/adopted/controller");
    const adoptedBackend = backend;
    adopted.whenGone(() => adoptedBackend.markVmmGone());
    observe("adopt: connect vCPU 0 (the VMM's vCPU fd)", () => adoptedBackend.connectVcpu(0, 0));
    observe("adopt: SOURCE 16", () => adoptedBackend.initSource(16, false, false));
    const device = await nextFromService(conn);
    observe("adopt: device message", () => (device === "closed" ? "closed" : device.message));
    if (device !== "closed") {
      const esb = MappedRegion.map(device.fds[0]!, 4 * hostPageSize(), 2 * 4096 * hostPageSize());
      observe("adopt: the VMM's own ESB mapping reads source 16's PQ", () =>
        esb.load(33 * hostPageSize() + 0x800, 8, "big"),
      );
      esb.unmap();
      closeFd(device.fds[0]!);
    }
    const gone = new Promise<void>((resolve) => adopted.whenGone(resolve));
    closeFd(conn);
    await gone;
    observe("adopt: after the VMM left, SOURCE 17", () => adoptedBackend.initSource(17, false, false));
    observe("adopt: after the VMM left, the source read", () => adoptedBackend.getSource(16).irq);
    ram.unmap();
  } finally {
    backend?.close();
    server.close();
    vmm.close();
  }
}
