import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { VplaneError, isDeviceFault, toVplaneError } from "@vplane/service-kit";
import { StoreConflictError, StoreError, StoreUnavailableError } from "@vplane/store";
import { errorBody } from "./error-body.js";
import { httpStatusOf } from "./http-status.js";

interface ValidationIssue {
  instancePath?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** "/iommu/smmus/0/name" → "iommu.smmus[0].name"; a query or path part is named after its source. */
export function fieldPathOf(instancePath: string): string {
  return instancePath
    .split("/")
    .filter((part) => part !== "")
    .map((part) => part.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((path, part) => (/^\d+$/.test(part) ? `${path}[${part}]` : path ? `${path}.${part}` : part), "");
}

/** A schema rejection as the one error shape: INVALID_ARGUMENT (400) naming the first bad field. */
function validationError(error: FastifyError): VplaneError {
  const issues = (error.validation ?? []) as ValidationIssue[];
  const first = issues[0];
  const field = fieldPathOf(first?.instancePath ?? "");
  const where = error.validationContext ?? "request";
  const message = first?.message ?? error.message;
  return new VplaneError({
    code: "INVALID_ARGUMENT",
    reason: "SCHEMA_VALIDATION_FAILED",
    message: `${where}${field ? ` field '${field}'` : ""}: ${message}`,
    field: field || where,
  });
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

/** A registry failure: unreachable is UNAVAILABLE (retry), a lost compare-and-swap race ABORTED. */
function registryError(error: StoreError, request: FastifyRequest): VplaneError {
  if (error instanceof StoreUnavailableError) {
    request.log.warn({ err: error }, "registry unavailable");
    return new VplaneError({
      code: "UNAVAILABLE",
      reason: "REGISTRY_UNAVAILABLE",
      message: "the registry did not answer; retry",
    });
  }
  if (error instanceof StoreConflictError) {
    return new VplaneError({
      code: "ABORTED",
      reason: "CONCURRENT_MODIFICATION",
      message: "the resource changed while this request ran; read it again and retry",
    });
  }
  request.log.error({ err: error }, "registry error");
  return new VplaneError({ code: "INTERNAL", reason: "REGISTRY_ERROR", message: "internal registry error" });
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
 * rejections as INVALID_ARGUMENT with the field, unknown routes as NOT_FOUND.
 */
export const errorHandling = fp(
  (app: FastifyInstance) => {
    app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
      if (error.validation) return sendError(reply, validationError(error));
      if (error instanceof StoreError) return sendError(reply, registryError(error, request));
      if (error instanceof VplaneError || isDeviceFault(error)) {
        const known = toVplaneError(error);
        if (httpStatusOf(known.code) >= 500) request.log.warn({ err: error }, "request failed");
        return sendError(reply, known);
      }
      const mapped = transportError(error);
      if (mapped.status >= 500) request.log.error({ err: error }, "unexpected error");
      return sendError(reply, mapped.error, mapped.status);
    });
    app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) =>
      sendError(
        reply,
        new VplaneError({
          code: "NOT_FOUND",
          reason: "ROUTE_NOT_FOUND",
          message: `no route ${request.method} ${request.url.split("?")[0]}`,
        }),
      ),
    );
  },
  { name: "vplane-error-handling" },
);
