import { Kind, type TSchema } from "@sinclair/typebox";
import { TypeCompiler, ValueErrorType, type ValueError } from "@sinclair/typebox/compiler";
import { Value } from "@sinclair/typebox/value";
import type { FastifySchemaCompiler, FastifySchemaValidationError } from "fastify";

/** One TypeBox error as a fastify validation issue; a string enum says which values it takes. */
function issueOf(error: ValueError): FastifySchemaValidationError {
  const values = (error.schema as { enum?: unknown }).enum;
  const enumValues = error.schema[Kind] === "StringEnum" && Array.isArray(values) ? values : undefined;
  return {
    keyword: ValueErrorType[error.type],
    instancePath: error.path,
    schemaPath: "",
    params: {},
    message: enumValues ? `Expected one of ${enumValues.join(", ")}` : error.message,
  };
}

/**
 * True for an object of string properties only (a VM's path, a create's headers): converting its
 * text changes nothing, and Value.Convert would copy every header of the request to find that.
 */
function textOnly(schema: TSchema): boolean {
  const { properties, additionalProperties } = schema as {
    properties?: Record<string, TSchema>;
    additionalProperties?: unknown;
  };
  return (
    schema[Kind] === "Object" &&
    typeof additionalProperties !== "object" &&
    Object.values(properties ?? {}).every((property) => property[Kind] === "String")
  );
}

/**
 * TypeBox validation, every error of a request part reported: bodies are checked as sent (never
 * coerced), path, query and headers converted from text first. @fastify/type-provider-typebox's
 * TypeBoxValidatorCompiler does the same but keeps only each error's message and path; the
 * error's type is kept here because it names the field violation's reason.
 */
export const typeBoxValidatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const check = TypeCompiler.Compile(schema);
  const convert = httpPart !== "body" && !textOnly(schema);
  return (input: unknown) => {
    const value = convert ? Value.Convert(schema, input) : input;
    if (check.Check(value)) return { value };
    return { error: [...check.Errors(value)].map(issueOf) };
  };
};
