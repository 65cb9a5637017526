import { Type, type Static } from "@sinclair/typebox";
import { ErrorBodySchema } from "./error-schema.js";
import { MigrationStatusSchema } from "./migration-schema.js";
import { Timestamp } from "./resource-id.js";
import { StringEnum } from "./string-enum.js";

export const OperationStateSchema = StringEnum(
  ["RUNNING", "CANCELLING", "SUCCEEDED", "FAILED", "CANCELLED"],
  { description: "AIP-216 -ING/-ED states; CANCELLING: cancel accepted, not yet honoured" },
);

export const OperationStepSchema = Type.Object({
  name: Type.String({ description: "e.g. interrupt-controller.CreateController" }),
  state: StringEnum(["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "ROLLED_BACK", "ROLLBACK_FAILED"]),
  detail: Type.Optional(Type.String()),
});

export const OperationEventSchema = Type.Object({
  seq: Type.Integer({ description: "1, 2, ...; the SSE event id" }),
  time: Timestamp,
  state: OperationStateSchema,
  progressPercent: Type.Integer(),
  step: Type.String(),
  message: Type.String(),
  migration: Type.Optional(MigrationStatusSchema),
});

/** A long-running operation (google.longrunning.Operation, AIP-151), in JSON. */
export const OperationSchema = Type.Object(
  {
    name: Type.String({ description: "operations/{id}" }),
    done: Type.Boolean(),
    metadata: Type.Object({
      kind: StringEnum(["create", "delete", "migrate"]),
      vm: Type.String(),
      tenant: Type.String(),
      host: Type.String(),
      state: OperationStateSchema,
      progressPercent: Type.Integer({ minimum: 0, maximum: 100 }),
      step: Type.String({ description: "what runs now, or the step that failed" }),
      steps: Type.Array(OperationStepSchema),
      cancelRequested: Type.Boolean(),
      createTime: Timestamp,
      updateTime: Timestamp,
      lastSeq: Type.Integer({ description: "seq of the latest progress event" }),
      migration: Type.Optional(MigrationStatusSchema),
    }),
    error: Type.Optional(ErrorBodySchema.properties.error),
    response: Type.Optional(Type.Unknown({ description: "the VM, when a create or migrate succeeded" })),
  },
  { title: "Operation" },
);

export type Operation = Static<typeof OperationSchema>;
export type OperationState = Static<typeof OperationStateSchema>;
export type OperationStep = Static<typeof OperationStepSchema>;
export type OperationEvent = Static<typeof OperationEventSchema>;
