import { resolve } from "node:path";
import { OperationsService, type OperationsServer } from "@vplane/proto/gen/google/longrunning/operations";
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import { OperationKind } from "@vplane/proto/gen/vplane/migration/v1/operation_progress";
import {
  MigrationServiceService,
  type MigrationServiceServer,
} from "@vplane/proto/gen/vplane/migration/v1/service";
import {
  VplaneError,
  buildCapabilities,
  type ServiceDescription,
  type ServiceRegistration,
} from "@vplane/service-kit";
import { HostDevices } from "./devices/host-devices.js";
import { PausedVmJournal, recoverPausedVms } from "./devices/paused-vm-journal.js";
import { IncomingMigrations } from "./live-migration/migration-destination.js";
import { migrateOut } from "./live-migration/migration-source.js";
import { migrationOptions } from "./migration-options.js";
import { MigrationMetrics } from "./operations/migration-metrics.js";
import { MigrationOperations } from "./operations/migration-operations.js";
import { checkId, idFromName } from "./resource-id.js";
import { restoreSnapshot, saveSnapshot } from "./snapshot/save-and-restore.js";
import { SnapshotStore } from "./snapshot/snapshot-store.js";

/** Largest guest RAM a destination accepts: the GuestMemory limit of the API (16 TiB). */
const MAX_RAM_BYTES = 16n << 40n;
const DEFAULT_TIMEOUTS = { noProgressMs: 30_000, totalMs: 600_000 };

/** The migration service: save, restore and live migration of device state. */
export const migrationDescription: ServiceDescription<typeof migrationOptions> = {
  name: "migration",
  envPrefix: "MIGRATION",
  defaultPort: 50053,
  options: migrationOptions,
  start: ({ config, handlers, log, metrics }) => {
    const dataDir = resolve(config.dataDir);
    const tls = { ca: config.tlsClientCa, cert: config.tlsCert, key: config.tlsKey };
    const devices = new HostDevices({
      targets: { "interrupt-controller": config.interruptTarget, iommu: config.iommuTarget },
      tls,
      callTimeoutMs: config.deviceCallTimeoutMs,
    });
    const snapshots = new SnapshotStore(dataDir, config.maxSnapshotBytes);
    const journal = new PausedVmJournal(dataDir);
    // VMs a previous run left paused are resumed in the background, once their services answer.
    const recovery = new AbortController();
    void recoverPausedVms(journal, (vm) => devices.resume(vm), log, {
      retryMs: 1000,
      signal: recovery.signal,
    }).catch((error: unknown) => log.error({ err: error }, "could not recover paused VMs"));
    const operations = new MigrationOperations(1000, new MigrationMetrics(metrics));
    const incoming = new IncomingMigrations(devices, { dataDir, maxRamBytes: MAX_RAM_BYTES });
    const capabilities = buildCapabilities({
      service: "migration",
      native: {
        backend: Backend.BACKEND_NATIVE,
        available: false,
        unavailableCode: "NO_NATIVE_DEVICES",
        unavailableReason:
          "native device state moves with the native backends, which this host does not offer",
      },
      limits: { max_snapshot_bytes: BigInt(config.maxSnapshotBytes), max_ram_bytes: MAX_RAM_BYTES },
    });
    const services: ServiceRegistration[] = [
      {
        definition: MigrationServiceService,
        implementation: {
          getCapabilities: handlers.unary(() => ({ capabilities })),
          saveSnapshot: handlers.unary((request) => {
            const vm = checkId(request.vm, "vm");
            const snapshotId = checkId(request.snapshotId, "snapshot_id");
            return operations.start(
              OperationKind.OPERATION_KIND_SAVE,
              vm,
              request.requestId,
              DEFAULT_TIMEOUTS,
              (context) =>
                saveSnapshot(context, devices, snapshots, journal, {
                  vm,
                  snapshotId,
                  resume: request.resume,
                }),
            );
          }),
          restoreSnapshot: handlers.unary((request) => {
            const snapshotId = idFromName(request.snapshot, "snapshots", "snapshot");
            const vm = checkId(request.vm, "vm");
            snapshots.load(snapshotId); // refuse a damaged or missing snapshot at once, before any operation
            return operations.start(
              OperationKind.OPERATION_KIND_RESTORE,
              vm,
              request.requestId,
              DEFAULT_TIMEOUTS,
              (context) =>
                restoreSnapshot(context, devices, snapshots, {
                  snapshotId,
                  vm,
                  guestMemory: request.guestMemory,
                }),
            );
          }),
          getSnapshot: handlers.unary((request) => ({
            snapshot: snapshots.load(idFromName(request.name, "snapshots", "name")).snapshot,
          })),
          listSnapshots: handlers.unary((request) => {
            const ids = snapshots.ids();
            const start = request.pageToken ? ids.findIndex((id) => id > request.pageToken) : 0;
            const size = request.pageSize === 0 ? 50 : Math.min(request.pageSize, 500);
            const page = start < 0 ? [] : ids.slice(start, start + size);
            const more = start >= 0 && start + size < ids.length;
            return {
              snapshots: page.map((id) => snapshots.load(id).snapshot),
              nextPageToken: more ? page[page.length - 1]! : "",
            };
          }),
          deleteSnapshot: handlers.unary((request) => {
            snapshots.delete(idFromName(request.name, "snapshots", "name"));
            return {};
          }),
          startMigration: handlers.unary((request) => {
            const vm = checkId(request.vm, "vm");
            if (!/^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(request.destination)) {
              throw new VplaneError({
                code: "INVALID_ARGUMENT",
                reason: "INVALID_DESTINATION",
                field: "destination",
                message: `destination "${request.destination}" must be host:port`,
              });
            }
            if (!request.vmmMovesRam && !request.guestMemory?.path) {
              throw new VplaneError({
                code: "INVALID_ARGUMENT",
                reason: "GUEST_MEMORY_REQUIRED",
                field: "guest_memory",
                message: "give the VM's guest_memory (path and size), or set vmm_moves_ram",
              });
            }
            const timeouts = {
              noProgressMs: request.noProgressTimeoutMs || DEFAULT_TIMEOUTS.noProgressMs,
              totalMs: request.totalTimeoutMs || DEFAULT_TIMEOUTS.totalMs,
            };
            return operations.start(
              OperationKind.OPERATION_KIND_MIGRATE,
              vm,
              request.requestId,
              timeouts,
              (context) =>
                migrateOut(context, devices, request, {
                  dataDir,
                  journal,
                  chunkBytes: config.ramChunkBytes,
                  noProgressMs: timeouts.noProgressMs,
                  devicePrecopy: config.devicePrecopy,
                  tls,
                }),
            );
          }),
          watchOperation: handlers.serverStream((request, send, context) =>
            operations.watch(
              request.name,
              request.afterSequence,
              (progress) => send({ progress }),
              context.signal,
            ),
          ),
          receiveMigration: handlers.bidiStream((requests, send) => incoming.receive(requests, send)),
        } satisfies MigrationServiceServer,
      },
      {
        definition: OperationsService,
        implementation: {
          getOperation: handlers.unary((request) => operations.get(request.name)),
          listOperations: handlers.unary((request) => ({
            ...operations.list(request.pageSize, request.pageToken),
            unreachable: [],
          })),
          cancelOperation: handlers.unary((request) => {
            operations.cancel(request.name);
            return {};
          }),
          deleteOperation: handlers.unary((request) => {
            operations.delete(request.name);
            return {};
          }),
          waitOperation: handlers.unary((request, context) => {
            const timeout = request.timeout;
            const ms = timeout ? Number(timeout.seconds) * 1000 + timeout.nanos / 1e6 : 60_000;
            return operations.wait(request.name, ms, context.signal);
          }),
        } satisfies OperationsServer,
      },
    ];
    return Promise.resolve({
      services,
      close: () => {
        recovery.abort();
        devices.close();
        return Promise.resolve();
      },
    });
  },
};
