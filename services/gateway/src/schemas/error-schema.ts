import { Type, type Static } from "@sinclair/typebox";

/** google.rpc.BadRequest.FieldViolation in JSON: one bad field of a request. */
export const FieldViolationSchema = Type.Object(
  {
    field: Type.String({
      description:
        "path of the field: body fields as in the JSON (`iommu.smmus[0].name`), path and query parameters by name (`irq`), `body` for the body as a whole",
    }),
    description: Type.String({ description: "why the field is bad, for people" }),
    reason: Type.String({
      description:
        "stable UPPER_SNAKE_CASE cause: REQUIRED, UNKNOWN_FIELD, WRONG_TYPE, OUT_OF_RANGE, BAD_LENGTH, BAD_FORMAT, NOT_ALLOWED, INVALID_VALUE, or the error's own reason",
    }),
  },
  { title: "FieldViolation" },
);

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
        field: Type.Optional(Type.String({ description: "path of the (first) offending request field" })),
        fieldViolations: Type.Optional(
          Type.Array(FieldViolationSchema, {
            description:
              "google.rpc.BadRequest's field_violations: every bad field of the request, one entry each (present whenever `field` is)",
          }),
        ),
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
export type FieldViolation = Static<typeof FieldViolationSchema>;
