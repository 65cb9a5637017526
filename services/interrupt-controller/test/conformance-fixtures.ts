import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import {
  ActiveMode,
  ControllerMode,
  type Controller,
} from "@vplane/proto/gen/vplane/interrupt/v1/controller";
import { AccessKind, EsbPage } from "@vplane/proto/gen/vplane/interrupt/v1/device";
import { encodeKvmSourceConfig } from "@vplane/xive";
import type { Harness } from "./service-harness.js";

export const RAM_BYTES = 64n * 1024n * 1024n;
export const QADDR = 0x10_0000n;
export const OS_PAGE = 0x2_0000;

export function controllerSpec(
  vm: string,
  mode: ControllerMode,
  fields: Partial<Controller> = {},
): Controller {
  return {
    name: "",
    vm,
    mode,
    activeMode: ActiveMode.ACTIVE_MODE_UNSPECIFIED,
    nrServers: 4,
    backend: Backend.BACKEND_EMULATED,
    guestMemory: { path: `${vm}.ram`, sizeBytes: RAM_BYTES },
    connectedServers: [],
    sourceCount: 0,
    createTime: undefined,
    ...fields,
  };
}

export const kvmConfig = (server: number, priority: number, eisn: number, masked = false) =>
  encodeKvmSourceConfig({ server, priority, eisn, masked });

/**
 * A XIVE controller with vCPU 0 connected, source 0x1300 initialised, queue (0, 6) at QADDR and
 * the source routed there with EISN 0x1300 (the conformance setup).
 */
export async function routedXive(h: Harness, vm: string): Promise<string> {
  const name = `vms/${vm}/controller`;
  await h.call("createController", {
    controller: controllerSpec(vm, ControllerMode.CONTROLLER_MODE_XIVE),
    requestId: "",
  });
  await h.call("connectVcpu", { name, vcpuId: 0, server: 0, requestId: "" });
  await h.call("initSources", {
    name,
    sources: [{ irq: 0x1300, levelSensitive: false, asserted: false }],
    requestId: "",
  });
  await h.call("configureQueue", {
    name,
    server: 0,
    priority: 6,
    queue: { flags: 1, qshift: 16, qaddr: QADDR, qtoggle: 1, qindex: 0 },
    requestId: "",
  });
  await h.call("configureSources", {
    name,
    sources: [{ irq: 0x1300, kvmConfig: kvmConfig(0, 6, 0x1300) }],
    requestId: "",
  });
  return name;
}

export const esb = (name: string, irq: number, offset: number, kind = AccessKind.ACCESS_KIND_LOAD) => ({
  name,
  irq,
  page: EsbPage.ESB_PAGE_MANAGEMENT,
  offset,
  size: 8,
  kind,
  value: 0n,
});

export const tima = (
  name: string,
  server: number,
  offset: number,
  size: number,
  kind: AccessKind,
  value = 0n,
) => ({
  name,
  server,
  offset,
  size,
  kind,
  value,
});
