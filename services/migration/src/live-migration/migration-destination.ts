// The destination side of a live migration (MigrationService.ReceiveMigration). It accepts one
// VM per stream, in protocol order: setup → RAM chunks (in order) → device pre-copy iterations
// (chunks, each iteration's end) → the stop-and-copy (re-sent pages, chunks; the services' last
// chunks may come together, device_chunks) → switchover (on its last chunk, or a message of its
// own) → commit; and commits only on that explicit last message
// (a cancelled stream can look like a normal end to the server). Anything else (an error, a cancel, a dropped connection, a step out
// of order, an end without commit) discards what this host received: the device services
// release what they prepared or imported, and the RAM file is deleted.
import { rm } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { crc32 } from "node:zlib";
import type {
  MigrationSetup,
  ReceiveMigrationRequest,
  ReceiveMigrationResponse,
} from "@vplane/proto/gen/vplane/migration/v1/live_migration";
import { VplaneError } from "@vplane/service-kit";
import type { HostDevices } from "../devices/host-devices.js";
import { checkId } from "../resource-id.js";
import { createRamFile, incomingRamPath, resolveRamPath } from "./guest-ram-file.js";
import { IncomingDeviceState } from "./incoming-device-state.js";

export interface MigrationDestinationOptions {
  dataDir: string;
  maxRamBytes: bigint;
}

type Step = "setup" | "ram" | "device-state" | "switched-over" | "committed";

/** VMs arriving on this host right now: one stream per VM. */
export class IncomingMigrations {
  private readonly arriving = new Set<string>();

  constructor(
    private readonly devices: HostDevices,
    private readonly options: MigrationDestinationOptions,
  ) {}

  async receive(
    requests: AsyncIterable<ReceiveMigrationRequest>,
    send: (response: ReceiveMigrationResponse) => Promise<void>,
  ): Promise<void> {
    let step: Step = "setup";
    let setup: MigrationSetup | undefined;
    let ram: FileHandle | undefined;
    let ramPath: string | undefined;
    let ramReceived = 0n;
    let incoming: IncomingDeviceState | undefined;
    let reserved = false;
    const ack = (message: ReceiveMigrationResponse["message"]) => send({ message, takesDeviceChunks: false });
    /** Every stop-and-copy chunk came: answers once the devices resumed and are durable. */
    const switchOver = async (incoming: IncomingDeviceState): Promise<Step> => {
      const switched = await incoming.switchover();
      await ack({ $case: "switchedOverReport", value: switched });
      return "switched-over";
    };
    try {
      for await (const { message } of requests) {
        if (!message) throw outOfOrder(step, "an empty message");
        if (message.$case === "setup" && step === "setup") {
          setup = message.value;
          checkId(setup.vm, "setup.vm");
          if (setup.ramSizeBytes > this.options.maxRamBytes) {
            throw new VplaneError({
              code: "RESOURCE_EXHAUSTED",
              reason: "GUEST_MEMORY_TOO_LARGE",
              message: `guest RAM of ${setup.ramSizeBytes} bytes exceeds this host's limit of ${this.options.maxRamBytes}`,
            });
          }
          this.reserve(setup.vm);
          reserved = true;
          if (setup.ramSizeBytes > 0n) {
            ramPath = resolveRamPath(this.options.dataDir, incomingRamPath(setup.vm));
            ram = await createRamFile(ramPath, setup.ramSizeBytes);
          }
          // The devices open the RAM file this stream fills, or the one the VMM prepares here.
          const guestMemory = ram
            ? { path: incomingRamPath(setup.vm), sizeBytes: setup.ramSizeBytes }
            : setup.guestMemory;
          incoming = new IncomingDeviceState(this.devices, setup.vm, guestMemory);
          step = setup.ramSizeBytes > 0n ? "ram" : "device-state";
          await send({ message: { $case: "ready", value: true }, takesDeviceChunks: true });
        } else if (
          message.$case === "ramChunk" &&
          ram &&
          setup &&
          (step === "ram" || step === "device-state")
        ) {
          const { offset, data } = message.value;
          if (crc32(data) !== message.value.crc32) {
            throw new VplaneError({
              code: "DATA_LOSS",
              reason: "RAM_CHUNK_CORRUPT",
              message: `RAM chunk at ${offset} fails its CRC-32`,
            });
          }
          const end = offset + BigInt(data.length);
          if (end > setup.ramSizeBytes || (step === "ram" && offset !== ramReceived)) {
            throw outOfOrder(
              step,
              `a RAM chunk at ${offset}..${end} (received ${ramReceived} of ${setup.ramSizeBytes})`,
            );
          }
          await ram.write(data, 0, data.length, Number(offset));
          if (step === "ram") {
            ramReceived = end;
            if (ramReceived === setup.ramSizeBytes) {
              step = "device-state";
              await ack({ $case: "ramBytesReceived", value: ramReceived });
            }
          }
        } else if (message.$case === "deviceChunk" && incoming && step === "device-state") {
          if (message.value.switchover && !message.value.final)
            throw outOfOrder(step, "a switchover on a pre-copy chunk");
          await incoming.chunk(message.value);
          if (message.value.switchover) step = await switchOver(incoming);
        } else if (message.$case === "deviceChunks" && incoming && step === "device-state") {
          const { chunks } = message.value;
          if (chunks.length === 0) throw outOfOrder(step, "an empty device_chunks");
          if (chunks.some((chunk) => !chunk.final))
            throw outOfOrder(step, "a pre-copy chunk in device_chunks");
          if (chunks.slice(0, -1).some((chunk) => chunk.switchover))
            throw outOfOrder(step, "a switchover before the last of device_chunks");
          for (const chunk of chunks) await incoming.chunk(chunk);
          if (chunks.at(-1)!.switchover) step = await switchOver(incoming);
        } else if (message.$case === "precopyIterationEnd" && incoming && step === "device-state") {
          await incoming.iterationEnd(message.value);
          await ack({ $case: "precopyPrepared", value: message.value });
        } else if (message.$case === "switchover" && incoming && step === "device-state") {
          step = await switchOver(incoming);
        } else if (message.$case === "commit" && step === "switched-over") {
          step = "committed"; // the RAM file and the devices stay, however the stream ends now
        } else {
          throw outOfOrder(step, `"${message.$case}"`);
        }
      }
      if (step !== "committed") throw outOfOrder(step, "the end of the stream");
    } finally {
      await ram?.close();
      if (step !== "committed") {
        incoming?.cancel();
        if (incoming?.touched && setup) await this.devices.release(setup.vm).catch(() => undefined);
        if (ramPath) await rm(ramPath, { force: true });
      }
      if (reserved && setup) this.arriving.delete(setup.vm);
    }
  }

  private reserve(vm: string) {
    if (this.arriving.has(vm)) {
      throw new VplaneError({
        code: "ABORTED",
        reason: "MIGRATION_IN_PROGRESS",
        message: `VM ${vm} is already arriving on this host`,
      });
    }
    this.arriving.add(vm);
  }
}

function outOfOrder(step: Step, got: string) {
  return new VplaneError({
    code: "FAILED_PRECONDITION",
    reason: "MIGRATION_PROTOCOL_ERROR",
    message: `expected the ${step} step of the migration stream, got ${got}`,
  });
}
