// The source's device pre-copy (issue 14): while the VM runs, each iteration streams what the
// device services report changed since the last one (everything at iteration 0) to the
// destination, which decodes, builds and makes it durable before acknowledging; then the devices
// say what is still to send (GetPreCopyInfo) and PreCopyPolicy decides whether to go on. What
// is left moves in the stop-and-copy.
import type { HostDevices, DeviceRole } from "../devices/host-devices.js";
import { ROLES } from "../devices/host-devices.js";
import type { OperationContext } from "../operations/migration-operations.js";
import type { PeerStream } from "./peer-stream.js";
import { PreCopyPolicy } from "./precopy-policy.js";

export interface PreCopyOutcome {
  /** The services that hold devices of the VM. */
  roles: DeviceRole[];
  bytes: number;
  iterations: number;
}

export async function preCopyDevices(
  context: OperationContext,
  devices: HostDevices,
  peer: PeerStream,
  vm: string,
  limits: { downtimeLimitMs: number; noProgressMs: number },
): Promise<PreCopyOutcome> {
  const policy = new PreCopyPolicy(limits.downtimeLimitMs, limits.noProgressMs, performance.now());
  let roles: DeviceRole[] = [...ROLES];
  let bytes = 0;
  for (let iteration = 0; ; iteration++) {
    context.checkpoint();
    const started = performance.now();
    const read = await devices.readPreCopy(
      vm,
      iteration,
      roles,
      (service, chunk) =>
        peer.send({
          $case: "deviceChunk",
          value: { service, iteration, final: false, chunk, switchover: false },
        }),
      context.signal,
    );
    roles = read.roles;
    const ended = performance.now();
    await peer.send({ $case: "precopyIterationEnd", value: iteration });
    const prepared = await peer.expect("precopyPrepared");
    if (prepared !== iteration)
      throw peer.protocolError(`iteration ${iteration} acknowledged as ${prepared}`);
    const acknowledged = performance.now();
    const info = await devices.preCopyInfo(vm, roles, context.signal);
    const remaining = Number(info.initialBytes + info.dirtyBytes);
    bytes += read.bytes;
    context.update({
      devicePrecopyBytes: BigInt(bytes),
      devicePrecopyIterations: iteration + 1,
      deviceDirtyBytes: BigInt(remaining),
      deviceStateBytes: BigInt(bytes),
    });
    const step = policy.next({
      bytes: read.bytes,
      durationMs: acknowledged - started,
      acknowledgeMs: acknowledged - ended,
      remainingBytes: remaining,
      at: acknowledged,
    });
    if (step.t === "stop") return { roles, bytes, iterations: iteration + 1 };
  }
}
