import { Type, type Static } from "@sinclair/typebox";
import { ResourceId } from "./resource-id.js";
import { StringEnum } from "./string-enum.js";

/** What a caller sends to POST /v1/vms/{vm}:migrate. */
export const MigrateRequestSchema = Type.Object(
  {
    destinationHost: ResourceId("registered host to move the VM to (not the one it is on)"),
    downtimeLimitMs: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 0xffffffff,
        description:
          "fail (and stay on the source) if the devices would stay paused longer than this, ms; 0 or unset: no limit (QEMU's downtime-limit)",
      }),
    ),
    vmmMovesRam: Type.Optional(
      Type.Boolean({
        description:
          "the VMM moves guest RAM itself: only device state crosses, and the pages the devices dirtied are reported; unset: false (the RAM file is copied)",
      }),
    ),
  },
  { additionalProperties: false, title: "MigrateRequest" },
);

export const MigrationPhaseSchema = StringEnum(
  [
    "SETTING_UP",
    "COPYING_RAM",
    "PRECOPYING_DEVICE_STATE",
    "QUIESCING",
    "TRANSFERRING_DEVICE_STATE",
    "SWITCHING_OVER",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
  ],
  { description: "vplane.migration.v1.Phase without its PHASE_ prefix" },
);

/** A live migration's progress as the source host's migration service reports it, mirrored. */
export const MigrationStatusSchema = Type.Object(
  {
    sourceHost: Type.String(),
    destinationHost: Type.String(),
    operation: Type.String({
      description:
        "the operation on the source host's migration service (operations/{uuid}); empty until started",
    }),
    phase: MigrationPhaseSchema,
    ramBytesTotal: Type.Integer({ description: "guest RAM to copy, bytes (0 when the VMM moves RAM)" }),
    ramBytesTransferred: Type.Integer({ description: "guest RAM copied so far, bytes" }),
    deviceStateBytes: Type.Integer({
      description: "device state moved, bytes: the pre-copy iterations' and the stop-and-copy's",
    }),
    devicePrecopyBytes: Type.Integer({ description: "device state moved while the VM ran, bytes" }),
    devicePrecopyIterations: Type.Integer({ description: "device pre-copy iterations done" }),
    deviceDirtyBytes: Type.Integer({
      description: "device state still to move after the last pre-copy iteration, bytes",
    }),
    elapsedMs: Type.Integer({ description: "since the migration started, ms" }),
    downtimeMs: Type.Integer({ description: "devices paused, quiesce to resume, ms (0 until switchover)" }),
    dirtyPages: Type.Integer({
      description: "guest pages the devices dirtied at quiesce (resent, or for the VMM to resend)",
    }),
    downtimeLimitMs: Type.Integer({ description: "0: no limit" }),
    vmmMovesRam: Type.Boolean(),
    cancelRequested: Type.Boolean({
      description: "the migration service was asked to cancel; the phase says whether it did",
    }),
    failedPhase: Type.Optional(MigrationPhaseSchema),
  },
  { title: "MigrationStatus" },
);

export type MigrateRequest = Static<typeof MigrateRequestSchema>;
export type MigrationPhase = Static<typeof MigrationPhaseSchema>;
export type MigrationStatus = Static<typeof MigrationStatusSchema>;
