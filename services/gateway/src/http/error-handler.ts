import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { VplaneError, isDeviceFault, toVplaneError } from "@vplane/service-kit";
import { StoreError } from "@vplane/store";
import { registryError } from "../registry/registry-error.js";
import { errorBody } from "./error-body.js";
import { InvalidFieldsError, violationsOf, type ValidationIssue } from "./field-violations.js";
import { httpStatusOf } from "./http-status.js";
import { allowedMethods, methodNotAllowed } from "./method-not-allowed.js";
import type { FieldViolation } from "../schemas/error-schema.js";
import { discardRestOfBody } from "./oversized-body.js";

/** The request parts in the order fastify validates them, and where the request holds each. */
const PARTS = [
  ["params", "params"],
  ["body", "body"],
  ["querystring", "query"],
  ["headers", "headers"],
] as const;

/** One request part's bad fields. */
interface PartViolations {
  part: string;
  violations: FieldViolation[];
}

/**
 * fastify stops at the first request part that fails its schema; the parts after it are checked
 * here with the route's own validators, so one answer names every bad field.
 */
function laterPartViolations(request: FastifyRequest, failedPart: string): PartViolations[] {
  const failed = PARTS.findIndex(([part]) => part === failedPart);
  return PARTS.slice(failed + 1).map(([part, property]) => {
    const validate = request.getValidationFunction(part) as
      ((input: unknown) => { error?: ValidationIssue[] }) | undefined;
    const result = typeof validate === "function" ? validate(request[property]) : undefined;
    return { part, violations: result?.error ? violationsOf(result.error, part) : [] };
  });
}

/** "body field 'vcpus': Expected integer; querystring field 'pageSize': ..." */
function messageOf(parts: readonly PartViolations[]): string {
  return parts
    .flatMap(({ part, violations }) =>
      violations.map((v) =>
        v.field === part ? `${part}: ${v.description}` : `${part} field '${v.field}': ${v.description}`,
      ),
    )
    .join("; ");
}

/** Schema rejections as the one error shape: INVALID_ARGUMENT (400) with every bad field. */
function validationError(error: FastifyError, request: FastifyRequest): VplaneError {
  const part = error.validationContext ?? "request";
  const issues = (error.validation ?? []) as ValidationIssue[];
  const first = violationsOf(issues, part);
  if (first.length === 0) first.push({ field: part, description: error.message, reason: "INVALID_VALUE" });
  const parts = [{ part, violations: first }, ...laterPartViolations(request, part)];
  return new InvalidFieldsError(
    parts.flatMap(({ violations }) => violations),
    messageOf(parts),
  );
}

/** Fastify's own request errors (bad JSON, body too large, bad content type) in the one shape. */
function transportError(error: FastifyError): { status: number; error: VplaneError } {
  const status = error.statusCode ?? 500;
  if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
    // 413 is the HTTP answer for a body over the limit; the code says which limit was hit.
    return {
      status: 413,
      error: new VplaneError({
        code: "RESOURCE_EXHAUSTED",
        reason: "REQUEST_BODY_TOO_LARGE",
        message: error.message,
      }),
    };
  }
  if (error.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") {
    return {
      status: 415,
      error: new VplaneError({
        code: "INVALID_ARGUMENT",
        reason: "UNSUPPORTED_MEDIA_TYPE",
        message: error.message,
      }),
    };
  }
  if (status >= 400 && status < 500) {
    const reason =
      error.code === "FST_ERR_CTP_INVALID_JSON_BODY" || error.name === "SyntaxError"
        ? "MALFORMED_JSON"
        : "BAD_REQUEST";
    return {
      status: 400,
      error: new VplaneError({ code: "INVALID_ARGUMENT", reason, message: error.message }),
    };
  }
  return {
    status: 500,
    error: new VplaneError({ code: "INTERNAL", reason: "INTERNAL", message: "internal error" }),
  };
}

/** A registry failure answered (registryError), logged by how bad it is. */
function loggedRegistryError(error: StoreError, request: FastifyRequest): VplaneError {
  const mapped = registryError(error);
  if (mapped.code === "UNAVAILABLE") request.log.warn({ err: error }, "registry unavailable");
  else if (mapped.code === "INTERNAL") request.log.error({ err: error }, "registry error");
  return mapped;
}

export function sendError(
  reply: FastifyReply,
  error: VplaneError,
  status = httpStatusOf(error.code),
): FastifyReply {
  return reply.code(status).type("application/json").send(errorBody(error));
}

/**
 * Every failure leaves the gateway in the one error shape: VplaneErrors (from routes or from a
 * service, read back from its status details) with their gRPC code mapped to HTTP, schema
 * rejections as INVALID_ARGUMENT with every bad field, a known path with a wrong method as 405
 * with Allow, unknown routes as NOT_FOUND.
 */
export const errorHandling = fp(
  (app: FastifyInstance) => {
    app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
      if (error.validation) return sendError(reply, validationError(error, request));
      if (error instanceof StoreError) return sendError(reply, loggedRegistryError(error, request));
      if (error instanceof VplaneError || isDeviceFault(error)) {
        const known = toVplaneError(error);
        if (httpStatusOf(known.code) >= 500) request.log.warn({ err: error }, "request failed");
        return sendError(reply, known);
      }
      if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE") discardRestOfBody(request, reply);
      const mapped = transportError(error);
      if (mapped.status >= 500) request.log.error({ err: error }, "unexpected error");
      return sendError(reply, mapped.error, mapped.status);
    });
    app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
      const path = request.url.split("?", 1)[0] ?? request.url;
      const allowed = allowedMethods(app, request.url);
      if (allowed.length > 0) {
        void reply.header("allow", allowed.join(", "));
        return sendError(reply, methodNotAllowed(request.method, path, allowed), 405);
      }
      return sendError(
        reply,
        new VplaneError({
          code: "NOT_FOUND",
          reason: "ROUTE_NOT_FOUND",
          message: `no route ${request.method} ${path}`,
        }),
      );
    });
  },
  { name: "vplane-error-handling" },
);
