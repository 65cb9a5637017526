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
 * TypeBox validation, every error of a request part reported: bodies are checked as sent (never
 * coerced), path, query and headers converted from text first. @fastify/type-provider-typebox's
 * TypeBoxValidatorCompiler does the same but keeps only each error's message and path; the
 * error's type is kept here because it names the field violation's reason.
 */
export const typeBoxValidatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const check = TypeCompiler.Compile(schema);
  return (input: unknown) => {
    const value = httpPart === "body" ? input : Value.Convert(schema, input);
    if (check.Check(value)) return { value };
    return { error: [...check.Errors(value)].map(issueOf) };
  };
};
