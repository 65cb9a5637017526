import { Type, type Static } from "@sinclair/typebox";

/** The one error shape of every REST answer that is not a success (AIP-193 in JSON). */
export const ErrorBodySchema = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: "gRPC status name, e.g. INVALID_ARGUMENT", examples: ["NOT_FOUND"] }),
      reason: Type.String({ description: "stable machine-readable reason, UPPER_SNAKE_CASE" }),
      message: Type.String({ description: "for people; clients never parse it" }),
      details: Type.Object({
        errno: Type.Optional(Type.Integer({ description: "Linux errno the kernel interface returns" })),
        hcallReturnCode: Type.Optional(Type.Integer({ description: "PAPR H_* return code" })),
        field: Type.Optional(Type.String({ description: "path of the offending request field" })),
        batchIndex: Type.Optional(Type.Integer({ description: "index of the first failed batch entry" })),
        step: Type.Optional(Type.String({ description: "operations: the step that failed" })),
        phase: Type.Optional(
          Type.String({ description: "migrations: the migration phase that failed (e.g. COPYING_RAM)" }),
        ),
      }),
    }),
  },
  { title: "Error" },
);

export type ErrorBody = Static<typeof ErrorBodySchema>;
