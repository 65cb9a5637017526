// The answers fastify and Node's HTTP server give on their own, before any route or hook runs
// (a URL that does not decode, a path parameter over the router's limit, a request that is not
// HTTP), in the one error shape like every other answer.
import type { Socket } from "node:net";
import { STATUS_CODES } from "node:http";
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { VplaneError } from "@vplane/service-kit";
import { errorBody } from "./error-body.js";
import { sendError } from "./error-handler.js";

/** fastify's frameworkErrors option: the router's refusals (FST_ERR_BAD_URL, FST_ERR_MAX_PARAM_LENGTH). */
export function answerFrameworkError(
  error: FastifyError,
  _request: FastifyRequest,
  reply: FastifyReply,
): void {
  if (error.code === "FST_ERR_BAD_URL") {
    const badUrl = new VplaneError({
      code: "INVALID_ARGUMENT",
      reason: "BAD_URL",
      message: "the URL path does not decode (a bad percent-encoding)",
    });
    return void sendError(reply, badUrl);
  }
  if (error.code === "FST_ERR_MAX_PARAM_LENGTH") {
    const tooLong = new VplaneError({
      code: "INVALID_ARGUMENT",
      reason: "PATH_PARAMETER_TOO_LONG",
      message: "a path parameter is longer than 100 characters (no id of this API is)",
    });
    // 414 is HTTP's answer for an over-long URI; the reason says which part.
    return void sendError(reply, tooLong, 414);
  }
  void sendError(reply, new VplaneError({ code: "INTERNAL", reason: "INTERNAL", message: "internal error" }));
}

/**
 * Node's clientError: a request that is not HTTP, headers over the size limit, a request that
 * took too long to arrive. Answered on the socket itself (there is no request to answer through),
 * then the connection is closed, as Node and fastify do by default.
 */
export function answerClientError(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const [status, reason, message] =
    error.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? [408, "REQUEST_TIMEOUT", "the request did not arrive in time"]
      : error.code === "HPE_HEADER_OVERFLOW"
        ? [431, "HEADERS_TOO_LARGE", "the request headers are larger than the server accepts"]
        : [400, "MALFORMED_HTTP", "the request is not valid HTTP/1.1"];
  const body = JSON.stringify(
    errorBody(
      new VplaneError({ code: status === 408 ? "DEADLINE_EXCEEDED" : "INVALID_ARGUMENT", reason, message }),
    ),
  );
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}
