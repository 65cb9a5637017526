import { resolve } from "node:path";
import { InterruptControllerServiceService } from "@vplane/proto/gen/vplane/interrupt/v1/service";
import {
  buildCapabilities,
  configStore,
  option,
  type ServiceDescription,
  deviceStateHandlers,
  deviceStateService,
  handoffEventLog,
  restoreDevices,
} from "@vplane/service-kit";
import { controllerCrudHandlers } from "./controller-crud-handlers.js";
import { ControllerRegistry } from "./controller-registry.js";
import { deviceHandlers } from "./device-handlers.js";
import { controllerVmDevices } from "./controller-vm-devices.js";
import { InterruptMetrics } from "./interrupt-metrics.js";
import { probeNativeXive } from "./native-probe.js";
import { VmmHandoffServer } from "./native-vmm-handoff.js";
import { LIMITS, limitsForCapabilities } from "./service-limits.js";
import { watchVcpuSignals } from "./signal-stream.js";

/** KVMPPC_XIVE_NR_IRQS: the most sources a KVM XIVE device has (xive.md §1.2). */
export const MAX_SOURCES = BigInt(LIMITS.maxSources);

const STORE = configStore("INTERRUPT", "interrupt-controller.db");

const serviceOptions = {
  ...STORE.options,
  handoffSocket: option.string({
    env: "VPLANE_INTERRUPT_HANDOFF_SOCKET",
    flag: "handoff-socket",
    doc: "Unix socket where VMMs hand their KVM VM and vCPU fds over for NATIVE controllers (docs/vmm-handoff.md); unset: none",
    default: "",
  }),
  maxControllers: option.integer({
    env: "VPLANE_INTERRUPT_MAX_CONTROLLERS",
    flag: "max-controllers",
    doc: "most controllers (VMs) this host serves",
    default: 1024,
    min: 1,
    max: 65536,
  }),
};

/** The interrupt-controller service: its gRPC API over the backends this host offers. */
export const interruptControllerDescription: ServiceDescription<typeof serviceOptions> = {
  name: "interrupt-controller",
  envPrefix: "INTERRUPT",
  defaultPort: 50051,
  options: serviceOptions,
  start: async ({ config, handlers, log, metrics }) => {
    const { dataDir, store } = STORE.open(config);
    const handoff = config.handoffSocket
      ? VmmHandoffServer.listen(resolve(config.handoffSocket), { log: handoffEventLog(log) })
      : undefined;
    const registry = new ControllerRegistry(store, {
      dataDir,
      maxControllers: config.maxControllers,
      log,
      ...(handoff ? { handedOver: (vm: string) => handoff.vm(vm) } : {}),
    });
    const close = await restoreDevices(registry, { store, handoff });
    log.info({ controllers: registry.size }, "controllers restored");
    const capabilities = buildCapabilities({
      service: "interrupt-controller",
      native: probeNativeXive(),
      limits: limitsForCapabilities(config.maxControllers),
    });
    const crud = controllerCrudHandlers(registry, dataDir);
    const deviceState = deviceStateHandlers(controllerVmDevices(registry, dataDir), "interrupt-controller");
    const u = handlers.unary.bind(handlers);
    const interruptMetrics = new InterruptMetrics(metrics);
    const device = deviceHandlers(registry, (counts) => interruptMetrics.countTriggers(counts));
    return {
      services: [
        {
          definition: InterruptControllerServiceService,
          implementation: {
            getCapabilities: u(() => ({ capabilities })),
            createController: u(crud.createController),
            deleteController: u(crud.deleteController),
            getController: u(crud.getController),
            listControllers: u(crud.listControllers),
            connectVcpu: u(device.connectVcpu),
            selectMode: u(device.selectMode),
            initSources: u(device.initSources),
            configureSources: u(device.configureSources),
            getSourceConfig: u(device.getSourceConfig),
            configureQueue: u(device.configureQueue),
            getQueueConfig: u(device.getQueueConfig),
            syncSources: u(device.syncSources),
            syncQueues: u(device.syncQueues),
            resetController: u(device.resetController),
            getVpState: u(device.getVpState),
            setVpState: u(device.setVpState),
            esbAccess: u(device.esbAccess),
            timaAccess: u(device.timaAccess),
            triggerSources: u(device.triggerSources),
            setLsiLevel: u(device.setLsiLevel),
            rawHypercall: u(device.rawHypercall),
            callRtas: u(device.callRtas),
            watchVcpuSignals: handlers.serverStream(
              watchVcpuSignals(registry, interruptMetrics.signalStream),
            ),
            dumpController: u(device.dumpController),
          },
        },
        // Migration's face of the same devices (proto/vplane/devicestate/v1).
        deviceStateService(handlers, deviceState),
      ],
      close,
    };
  },
};
