import { setTimeout as sleep } from "node:timers/promises";
import {
  EchoServiceService,
  type EchoRequest,
  type SleepRequest,
} from "@vplane/proto/gen/vplane/testing/v1/echo";
import type { CallHandlers } from "./call-handlers.js";
import type { ServiceRegistration } from "./grpc-server.js";
import { VplaneError } from "./vplane-error.js";

/** Longest Sleep a caller may ask for, in ms. */
export const MAX_SLEEP_MS = 60_000;

/**
 * vplane.testing.v1.EchoService: the trivial service the kit's tests and the benchmarks' same-run
 * baseline call. Echo fails on request with a fully populated error so the error model can be
 * checked end to end.
 */
export function echoService(handlers: CallHandlers): ServiceRegistration {
  return {
    definition: EchoServiceService,
    implementation: {
      echo: handlers.unary((request: EchoRequest) => {
        if (request.failWithReason) {
          throw new VplaneError({
            code: "INVALID_ARGUMENT",
            reason: request.failWithReason,
            message: `failing as asked: ${request.failWithReason}`,
            errno: 22,
            hcallReturnCode: -55,
            field: "fail_with_reason",
          });
        }
        return { payload: request.payload };
      }),
      sleep: handlers.unary(async (request: SleepRequest, context) => {
        if (request.delayMs > MAX_SLEEP_MS) {
          throw new VplaneError({
            code: "INVALID_ARGUMENT",
            reason: "DELAY_OUT_OF_RANGE",
            message: `delay_ms must be at most ${MAX_SLEEP_MS}`,
            field: "delay_ms",
          });
        }
        try {
          await sleep(request.delayMs, undefined, { signal: context.signal });
          return { completed: true };
        } catch {
          return { completed: false };
        }
      }),
    },
  };
}
