import type { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import type { GuestMemory } from "@vplane/proto/gen/vplane/common/v1/guest_memory";
import type * as pb from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import { DeviceStateServiceService } from "@vplane/proto/gen/vplane/devicestate/v1/service";
import { afterWrites } from "./after-writes.js";
import type { CallHandlers, UnaryHandler } from "./call-handlers.js";
import { DeviceStateAssembler, chunkDeviceState } from "./device-state-chunks.js";
import type { ServiceRegistration } from "./grpc-server.js";
import { VplaneError } from "./vplane-error.js";

/** What StopAndCopy hands back: the final sections and the pages the devices wrote (ascending). */
export interface StopAndCopyResult {
  sections: pb.DeviceSection[];
  dirtyPages: readonly bigint[];
  pageSize: bigint;
  /** When the devices stopped (wallClockUs). */
  pausedAtUs: bigint;
}

/** What FinishImport did: the devices, when they resumed, and the import's durable write. */
export interface FinishedImport {
  devices: string[];
  /** When the devices resumed (wallClockUs); 0 when not asked to. */
  resumedAtUs: bigint;
  /**
   * Settles once the import is durable: the devices may run before (Store's "deferred" writes);
   * FinishImport answers only after it, so the source lets go of the VM only then.
   */
  durable: Promise<void>;
}

/** A device-state stream joined: its first message's fields and the sections it carried. */
export interface ImportStream {
  vm: string;
  guestMemory: GuestMemory | undefined;
  backend: Backend;
  sections: pb.DeviceSection[];
}

/**
 * What a device service implements of vplane.devicestate.v1.DeviceStateService. The pre-copy
 * methods (issue 14) deal in sections: deviceStateService cuts them into checksummed chunks and
 * joins and checks the chunks it receives.
 */
export interface DeviceStateHandlers {
  quiesceDevices: UnaryHandler<pb.QuiesceDevicesRequest, pb.QuiesceDevicesResponse>;
  exportDeviceState: UnaryHandler<pb.ExportDeviceStateRequest, pb.ExportDeviceStateResponse>;
  importDeviceState: UnaryHandler<pb.ImportDeviceStateRequest, pb.ImportDeviceStateResponse>;
  resumeDevices: UnaryHandler<pb.ResumeDevicesRequest, pb.ResumeDevicesResponse>;
  releaseDevices: UnaryHandler<pb.ReleaseDevicesRequest, pb.ReleaseDevicesResponse>;
  /** Pre-copy iteration `iteration` (0: everything): the VM's sections that changed since the last. */
  readPreCopy(vm: string, iteration: number): pb.DeviceSection[] | Promise<pb.DeviceSection[]>;
  preCopyInfo(vm: string): pb.PreCopyInfo | Promise<pb.PreCopyInfo>;
  /** Quiesces the VM's devices; the runtime state and the configuration not yet pre-copied. */
  stopAndCopy(vm: string, destination: string): StopAndCopyResult | Promise<StopAndCopyResult>;
  /** Applies pre-copy iteration `iteration` to the VM's prepared import; the devices prepared. */
  prepareImport(stream: ImportStream, iteration: number): Promise<string[]>;
  /** Applies the stop-and-copy and makes the devices the VM's (resumed if asked, then durable). */
  finishImport(stream: ImportStream, resume: boolean): Promise<FinishedImport>;
}

/** Ascending page addresses as ascending, disjoint runs of consecutive pages. */
export function pageRanges(pages: readonly bigint[], pageSize: bigint): pb.PageRange[] {
  const ranges: pb.PageRange[] = [];
  for (const address of pages) {
    const last = ranges[ranges.length - 1];
    if (last && last.address + last.count * pageSize === address) last.count++;
    else ranges.push({ address, count: 1n });
  }
  return ranges;
}

/**
 * Joins a client stream of chunks: every message names the VM the first one names (whose other
 * fields hold for the stream), and the chunks form one whole stream (DeviceStateAssembler). Done
 * at its last chunk, which says so: the client's half-close may come in a packet of its own, and
 * in FinishImport waiting for it would be inside the downtime. What follows is not read.
 */
async function joinStream<R extends { vm: string; chunk?: pb.DeviceStateChunk | undefined }>(
  requests: AsyncIterable<R>,
): Promise<{ first: R; sections: pb.DeviceSection[] }> {
  const assembler = new DeviceStateAssembler();
  let first: R | undefined;
  // Not for-await: leaving it early would return() the iterator, which destroys the call.
  const messages = requests[Symbol.asyncIterator]();
  while (!assembler.complete) {
    const next = await messages.next();
    if (next.done) break;
    const request = next.value;
    first ??= request;
    if (request.vm !== first.vm) {
      throw new VplaneError({
        code: "INVALID_ARGUMENT",
        reason: "STREAM_OF_ANOTHER_VM",
        field: "vm",
        message: `a message for VM ${request.vm} on the stream of VM ${first.vm}`,
      });
    }
    assembler.add(request.chunk);
  }
  if (!first) {
    throw new VplaneError({
      code: "INVALID_ARGUMENT",
      reason: "STREAM_EMPTY",
      field: "chunk",
      message: "the stream carried no message",
    });
  }
  return { first, sections: assembler.finish() };
}

/**
 * The next pre-copy iteration of each VM: 0 (re)starts one, any other must follow the last, so
 * that two migrations of one VM cannot interleave unseen. Resume and release end it.
 */
class PreCopyIterations {
  private readonly next = new Map<string, number>();

  check(vm: string, iteration: number): void {
    const expected = this.next.get(vm);
    if (iteration !== 0 && iteration !== expected) {
      throw new VplaneError({
        code: "FAILED_PRECONDITION",
        reason: "PRECOPY_ITERATION_UNEXPECTED",
        field: "iteration",
        message:
          expected === undefined
            ? `VM ${vm} has no pre-copy running: start with iteration 0`
            : `VM ${vm}'s next pre-copy iteration is ${expected}, not ${iteration}`,
      });
    }
  }

  done(vm: string, iteration: number): void {
    this.next.set(vm, iteration + 1);
  }

  end(vm: string): void {
    this.next.delete(vm);
  }
}

/**
 * Runs one VM's importing and releasing calls one after the other, so that a release (a failed
 * migration's rollback) never overtakes an import still being made durable and leaves it behind.
 */
class VmQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(vm: string, work: () => Promise<T> | T): Promise<T> {
    const previous = this.tails.get(vm) ?? Promise.resolve();
    const next = previous.then(work, work);
    const tail = next.catch(() => undefined);
    this.tails.set(vm, tail);
    void tail.then(() => {
      if (this.tails.get(vm) === tail) this.tails.delete(vm);
    });
    return next;
  }
}

/** The DeviceStateService registration every device service serves beside its own API. */
export function deviceStateService(handlers: CallHandlers, state: DeviceStateHandlers): ServiceRegistration {
  const iterations = new PreCopyIterations();
  const queue = new VmQueue();
  return {
    definition: DeviceStateServiceService,
    implementation: {
      quiesceDevices: handlers.unary(state.quiesceDevices),
      exportDeviceState: handlers.unary(state.exportDeviceState),
      importDeviceState: handlers.unary((request: pb.ImportDeviceStateRequest, context) =>
        queue.run(request.vm, () => state.importDeviceState(request, context)),
      ),
      resumeDevices: handlers.unary((request: pb.ResumeDevicesRequest, context) => {
        iterations.end(request.vm);
        return state.resumeDevices(request, context);
      }),
      releaseDevices: handlers.unary((request: pb.ReleaseDevicesRequest, context) =>
        queue.run(request.vm, () => {
          iterations.end(request.vm);
          return state.releaseDevices(request, context);
        }),
      ),
      readPreCopy: handlers.serverStream<pb.ReadPreCopyRequest, pb.ReadPreCopyResponse>(
        async (request, send) => {
          iterations.check(request.vm, request.iteration);
          const sections = await state.readPreCopy(request.vm, request.iteration);
          iterations.done(request.vm, request.iteration);
          for (const chunk of chunkDeviceState(sections)) await send({ chunk });
        },
      ),
      getPreCopyInfo: handlers.unary(async (request: pb.GetPreCopyInfoRequest) => ({
        info: await state.preCopyInfo(request.vm),
      })),
      stopAndCopy: handlers.serverStream<pb.StopAndCopyRequest, pb.StopAndCopyResponse>(
        async (request, send) => {
          // The response headers leave before the devices pause: the migration service reads
          // them before the downtime, which runs from the pause (issue 14).
          await afterWrites();
          const stopped = await state.stopAndCopy(request.vm, request.destination);
          iterations.end(request.vm);
          const chunks = chunkDeviceState(stopped.sections);
          for (const [i, chunk] of chunks.entries()) {
            const first = i === 0;
            await send({
              chunk,
              dirtyPages: first ? pageRanges(stopped.dirtyPages, stopped.pageSize) : [],
              pageSize: first ? stopped.pageSize : 0n,
              pausedAtUs: first ? stopped.pausedAtUs : 0n,
            });
          }
          // The stream's end (its trailers) follows once the last chunk has left: the migration
          // service then forwards that chunk before it reads the end, not after (issue 14).
          await afterWrites();
        },
        { headersFirst: true },
      ),
      prepareImport: handlers.clientStream<pb.PrepareImportRequest, pb.PrepareImportResponse>(
        async (requests) => {
          const { first, sections } = await joinStream(requests);
          const stream = { vm: first.vm, guestMemory: first.guestMemory, backend: first.backend, sections };
          return { devices: await queue.run(first.vm, () => state.prepareImport(stream, first.iteration)) };
        },
      ),
      finishImport: handlers.clientStream<pb.FinishImportRequest, pb.FinishImportResponse>(
        async (requests) => {
          const { first, sections } = await joinStream(requests);
          const stream = { vm: first.vm, guestMemory: first.guestMemory, backend: first.backend, sections };
          // In the VM's queue until durable: a release (the rollback) comes after the write.
          return queue.run(first.vm, async () => {
            const { devices, resumedAtUs, durable } = await state.finishImport(stream, first.resume);
            await durable;
            return { devices, resumedAtUs };
          });
        },
      ),
    },
  };
}
