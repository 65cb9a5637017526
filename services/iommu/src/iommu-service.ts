import { resolve } from "node:path";
import { IommuServiceService } from "@vplane/proto/gen/vplane/iommu/v1/service";
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
import { smmuVmDevices } from "./smmu-vm-devices.js";
import { IommuMetrics } from "./iommu-metrics.js";
import { probeNativeSmmu } from "./native-probe.js";
import { SmmuHandoffServer } from "./native-vmm-handoff.js";
import { limitsForCapabilities } from "./service-limits.js";
import { smmuConfigHandlers } from "./smmu-config-handlers.js";
import { smmuCrudHandlers } from "./smmu-crud-handlers.js";
import { smmuDataHandlers } from "./smmu-data-handlers.js";
import { SmmuRegistry } from "./smmu-registry.js";

const STORE = configStore("IOMMU", "iommu.db");

const serviceOptions = {
  ...STORE.options,
  handoffSocket: option.string({
    env: "VPLANE_IOMMU_HANDOFF_SOCKET",
    flag: "handoff-socket",
    doc: "Unix socket where VMMs hand their iommufd and VFIO device fds over for NATIVE SMMUs (docs/vmm-handoff.md); unset: the service opens them itself",
    default: "",
  }),
  maxSmmus: option.integer({
    env: "VPLANE_IOMMU_MAX_SMMUS",
    flag: "max-smmus",
    doc: "most virtual SMMUs this host serves",
    default: 1024,
    min: 1,
    max: 65535,
  }),
};

/** Test and bench hook: sees the registry once the service started. */
export interface IommuServiceHooks {
  onRegistry?(registry: SmmuRegistry): void;
}

/** The iommu service description, with optional hooks. */
export function iommuDescriptionWith(
  hooks: IommuServiceHooks = {},
): ServiceDescription<typeof serviceOptions> {
  return {
    name: "iommu",
    envPrefix: "IOMMU",
    defaultPort: 50052,
    options: serviceOptions,
    start: async ({ config, handlers, log, metrics }) => {
      const { dataDir, store } = STORE.open(config);
      const iommuMetrics = new IommuMetrics(metrics);
      const handoff = config.handoffSocket
        ? SmmuHandoffServer.listen(resolve(config.handoffSocket), { log: handoffEventLog(log) })
        : undefined;
      const registry = new SmmuRegistry(store, {
        dataDir,
        maxSmmus: config.maxSmmus,
        log,
        onLogged: (message) => iommuMetrics.logged(message),
        ...(handoff ? { handedOver: (name: string) => handoff.smmu(name) } : {}),
      });
      const close = await restoreDevices(registry, { store, handoff });
      log.info({ smmus: registry.size }, "SMMUs restored");
      hooks.onRegistry?.(registry);
      const capabilities = buildCapabilities({
        service: "iommu",
        native: probeNativeSmmu(),
        limits: limitsForCapabilities(config.maxSmmus),
      });
      const crud = smmuCrudHandlers(registry, dataDir);
      const cfg = smmuConfigHandlers(registry);
      const data = smmuDataHandlers(registry, iommuMetrics);
      const deviceState = deviceStateHandlers(smmuVmDevices(registry, dataDir), "iommu");
      const u = handlers.unary.bind(handlers);
      return {
        services: [
          {
            definition: IommuServiceService,
            implementation: {
              getCapabilities: u(() => ({ capabilities })),
              createSmmu: u(crud.createSmmu),
              deleteSmmu: u(crud.deleteSmmu),
              getSmmu: u(crud.getSmmu),
              listSmmus: u(crud.listSmmus),
              mapStage2: u(cfg.mapStage2),
              unmapStage2: u(cfg.unmapStage2),
              attachDevice: u(cfg.attachDevice),
              detachDevice: u(cfg.detachDevice),
              attachPasidTable: u(cfg.attachPasidTable),
              detachPasidTable: u(cfg.detachPasidTable),
              invalidate: u(cfg.invalidate),
              bindMsi: u(cfg.bindMsi),
              unbindMsi: u(cfg.unbindMsi),
              streamEvents: handlers.serverStream(data.streamEvents),
              streamEventBatches: handlers.serverStream(data.streamEventBatches),
              respondPageRequest: u(data.respondPageRequest),
              translate: u(data.translate),
              dmaRead: u(data.dmaRead),
              dmaWrite: u(data.dmaWrite),
              dumpSmmu: u(data.dumpSmmu),
            },
          },
          // Migration's face of the same devices (proto/vplane/devicestate/v1).
          deviceStateService(handlers, deviceState),
        ],
        close,
      };
    },
  };
}

/** The iommu service: its gRPC API over the backends this host offers. */
export const iommuDescription = iommuDescriptionWith();
