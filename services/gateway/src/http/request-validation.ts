import { Kind, type TSchema } from "@sinclair/typebox";
import type { FastifySchemaCompiler, FastifySchemaValidationError } from "fastify";
import { typeBoxValidatorCompiler } from "./typebox-validator.js";

/** What a path, query or header integer must look like: decimal digits, no leading zero. */
const CANONICAL_UNSIGNED = /^(0|[1-9][0-9]*)$/;
const CANONICAL_SIGNED = /^-?(0|[1-9][0-9]*)$/;

/** The integer properties of an object schema, with the pattern their text must match. */
function integerProperties(schema: TSchema): [string, RegExp][] {
  const properties = (schema as { properties?: Record<string, TSchema> }).properties ?? {};
  return Object.entries(properties)
    .filter(([, property]) => property[Kind] === "Integer")
    .map(([name, property]) => [
      name,
      ((property as { minimum?: number }).minimum ?? -1) >= 0 ? CANONICAL_UNSIGNED : CANONICAL_SIGNED,
    ]);
}

/** A non-canonical integer as a validation issue (keyword Format: its violation reason is BAD_FORMAT). */
function notCanonical(name: string, text: unknown): FastifySchemaValidationError {
  return {
    keyword: "Format",
    schemaPath: `#/properties/${name}`,
    params: {},
    instancePath: `/${name}`,
    message: `must be an integer written in decimal digits (no fraction, exponent, sign or leading zero); got ${JSON.stringify(text)}`,
  };
}

/**
 * TypeBox validation (typeBoxValidatorCompiler: bodies are never coerced), with one rule more
 * for the parts that arrive as text (path, query, headers): an integer there is written the
 * canonical way, or the request is refused naming it (with the part's other bad fields).
 * TypeBox's conversion alone reads "1.9", "1e3" and "1abc" with parseInt (all as 1), so
 * /sources/1.9 would address irq 1.
 */
export const requestValidatorCompiler: FastifySchemaCompiler<TSchema> = (route) => {
  const validate = typeBoxValidatorCompiler(route) as (input: unknown) => {
    value?: unknown;
    error?: FastifySchemaValidationError[];
  };
  if (route.httpPart === "body") return validate;
  const integers = integerProperties(route.schema);
  if (integers.length === 0) return validate;
  return (input: unknown) => {
    const fields = (input ?? {}) as Record<string, unknown>;
    const bad = integers
      .filter(([name, pattern]) => {
        const text = fields[name];
        return text !== undefined && (typeof text !== "string" || !pattern.test(text));
      })
      .map(([name]) => notCanonical(name, fields[name]));
    if (bad.length === 0) return validate(input);
    const others = (validate(input).error ?? []).filter(
      (e) => !bad.some((b) => b.instancePath === e.instancePath),
    );
    return { error: [...bad, ...others] };
  };
};
