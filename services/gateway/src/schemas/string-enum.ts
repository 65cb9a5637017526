import { Kind, Type, TypeRegistry, type SchemaOptions, type TUnsafe } from "@sinclair/typebox";

// TypeBox writes a union of literals as anyOf of one-value enums, which client generators turn
// into poor types; this kind is the plain {type: string, enum: [...]} of JSON Schema, checked by
// TypeBox's compiler through its registry.
TypeRegistry.Set<{ enum: readonly string[] }>(
  "StringEnum",
  (schema, value) => typeof value === "string" && schema.enum.includes(value),
);

/** A string that is one of `values`: {type: "string", enum: values} in the OpenAPI document. */
export function StringEnum<const T extends readonly string[]>(
  values: T,
  options: SchemaOptions = {},
): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ ...options, [Kind]: "StringEnum", type: "string", enum: values });
}
