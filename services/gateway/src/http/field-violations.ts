import { VplaneError } from "@vplane/service-kit";
import type { FieldViolation } from "../schemas/error-schema.js";

/** One schema rejection as the validator compiler reports it (keyword: TypeBox's ValueErrorType name). */
export interface ValidationIssue {
  instancePath?: string;
  message?: string;
  keyword?: string;
}

/**
 * A request refused for bad fields: INVALID_ARGUMENT listing every one (google.rpc.BadRequest);
 * `field` is the first, for clients that read one.
 */
export class InvalidFieldsError extends VplaneError {
  constructor(
    readonly violations: readonly FieldViolation[],
    message: string,
    reason = "SCHEMA_VALIDATION_FAILED",
  ) {
    super({ code: "INVALID_ARGUMENT", reason, message, field: violations[0]?.field });
  }
}

/** "/iommu/smmus/0/name" → "iommu.smmus[0].name" (JSON Pointer to the BadRequest field path). */
export function fieldPathOf(instancePath: string): string {
  return instancePath
    .split("/")
    .filter((part) => part !== "")
    .map((part) => part.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((path, part) => (/^\d+$/.test(part) ? `${path}[${part}]` : path ? `${path}.${part}` : part), "");
}

/** The violation's reason, by the kind of rule the value broke (TypeBox's ValueErrorType names). */
const REASONS: [RegExp, string][] = [
  [/^ObjectRequiredProperty$/, "REQUIRED"],
  [/^ObjectAdditionalProperties$/, "UNKNOWN_FIELD"],
  [/(Minimum|Maximum)/, "OUT_OF_RANGE"],
  [/(Length|Items|Properties)$/, "BAD_LENGTH"],
  [/(Pattern|Format)/i, "BAD_FORMAT"],
  [/^(Kind|Literal|Union)$/, "NOT_ALLOWED"],
  [/^(Integer|Number|String|Boolean|Object|Array|Null|BigInt|Tuple)$/, "WRONG_TYPE"],
];

function reasonOf(keyword: string | undefined): string {
  return REASONS.find(([pattern]) => keyword !== undefined && pattern.test(keyword))?.[1] ?? "INVALID_VALUE";
}

/**
 * A request part's schema rejections as field violations, one per field: the first rule it broke
 * (a missing property is also "not an object", which would only repeat it). A rejection of the
 * part as a whole is named after the part (`body`).
 */
export function violationsOf(issues: readonly ValidationIssue[], part: string): FieldViolation[] {
  const byField = new Map<string, FieldViolation>();
  for (const issue of issues) {
    const field = fieldPathOf(issue.instancePath ?? "") || part;
    if (byField.has(field)) continue;
    byField.set(field, {
      field,
      description: issue.message ?? "invalid",
      reason: reasonOf(issue.keyword),
    });
  }
  return [...byField.values()];
}
