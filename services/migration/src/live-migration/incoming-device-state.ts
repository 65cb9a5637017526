// The destination's end of the device-state streams (issue 14): each device service's chunks,
// as the source forwards them, go on unread to this host's device service of the same role:
// a pre-copy iteration's to PrepareImport (the service decodes, builds and makes them durable
// while the source runs), the stop-and-copy's to FinishImport (applied and resumed at once).
// The streams are opened on their first chunk and closed on their last, so the device services
// work while the chunks still arrive; the stop's FinishImport streams are opened ahead, at the
// end of each pre-copy iteration, so that setting up their calls is not part of the downtime.
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import type { GuestMemory } from "@vplane/proto/gen/vplane/common/v1/guest_memory";
import type { DeviceStateStreamChunk } from "@vplane/proto/gen/vplane/migration/v1/live_migration";
import type {
  FinishImportRequest,
  FinishImportResponse,
  PrepareImportRequest,
  PrepareImportResponse,
} from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import { VplaneError, type ClientStreamCall } from "@vplane/service-kit";
import { ROLES, type DeviceRole, type HostDevices } from "../devices/host-devices.js";

interface OpenStream<Req, Res> {
  call: ClientStreamCall<Req, Res>;
  /** A message went out (the first carries the stream's fields). */
  written: boolean;
  /** Set once the last chunk went out: the device service's answer. */
  answer?: Promise<Res>;
  /** Cancels this stream alone: one opened ahead that a later iteration replaces. */
  cancel?: () => void;
}

function protocolError(message: string): VplaneError {
  return new VplaneError({ code: "FAILED_PRECONDITION", reason: "MIGRATION_PROTOCOL_ERROR", message });
}

export class IncomingDeviceState {
  private readonly prepares = new Map<string, OpenStream<PrepareImportRequest, PrepareImportResponse>>();
  private readonly finishes = new Map<string, OpenStream<FinishImportRequest, FinishImportResponse>>();
  private readonly aborts = new AbortController();
  /** Messages exchanged with the device services for the stop-and-copy. */
  private finishMessages = 0;
  /** A device service may hold something of the VM (prepared or imported): release on failure. */
  touched = false;

  constructor(
    private readonly devices: HostDevices,
    private readonly vm: string,
    /** The guest RAM the devices use on this host. */
    private readonly guestMemory: GuestMemory | undefined,
  ) {}

  /** One forwarded chunk: opens its stream on the first, answers are awaited at the markers. */
  async chunk({ service, iteration, final, chunk }: DeviceStateStreamChunk): Promise<void> {
    const role = ROLES.find((r) => r === service);
    if (!role || !chunk)
      throw protocolError(`a device-state chunk of "${service}" without a known service or data`);
    const { vm, guestMemory } = this;
    // As ImportDeviceState's callers: the destination's devices use its default (emulated) backend.
    const backend = Backend.BACKEND_UNSPECIFIED;
    if (final) {
      this.finishMessages += chunk.last ? 2 : 1; // the chunk, and the answer after the last
      await this.feed(
        this.finishes,
        role,
        chunk.last,
        () => this.devices.finishImport(role, this.aborts.signal),
        (first) =>
          first
            ? { vm, resume: true, guestMemory, backend, chunk }
            : { vm, resume: true, guestMemory: undefined, backend, chunk },
      );
    } else {
      await this.feed(
        this.prepares,
        `${role}/${iteration}`,
        chunk.last,
        () => this.devices.prepareImport(role, this.aborts.signal),
        (first) =>
          first
            ? { vm, iteration, guestMemory, backend, chunk }
            : { vm, iteration, guestMemory: undefined, backend, chunk },
      );
    }
  }

  /** Writes one message to the stream `key` (opened by `open` on its first), closed on the last. */
  private async feed<Req, Res>(
    streams: Map<string, OpenStream<Req, Res>>,
    key: string,
    last: boolean,
    open: () => ClientStreamCall<Req, Res>,
    message: (first: boolean) => Req,
  ): Promise<void> {
    let stream = streams.get(key);
    if (!stream) {
      this.touched = true;
      stream = { call: open(), written: false };
      streams.set(key, stream);
    }
    if (stream.answer) throw protocolError(`a chunk of ${key} after the last of its stream`);
    const first = !stream.written;
    stream.written = true;
    await stream.call.write(message(first));
    if (last) {
      stream.answer = stream.call.finish();
      stream.answer.catch(() => undefined); // awaited at the iteration's end or the switchover
    }
  }

  /**
   * Pre-copy iteration `iteration` was all sent: waits until every service prepared it, then opens
   * their FinishImport streams for the stop that may follow.
   */
  async iterationEnd(iteration: number): Promise<void> {
    const ending = [...this.prepares].filter(([key]) => key.endsWith(`/${iteration}`));
    for (const [key, stream] of ending) {
      if (!stream.answer) throw protocolError(`iteration ${iteration} ended before the last chunk of ${key}`);
      await stream.answer;
      this.prepares.delete(key);
    }
    if (this.prepares.size > 0)
      throw protocolError(`streams of another iteration are open at the end of ${iteration}`);
    for (const [key] of ending) this.openFinishAhead(key.slice(0, key.lastIndexOf("/")) as DeviceRole);
  }

  /**
   * Opens `role`'s FinishImport stream before its first chunk, replacing (cancelling) one opened
   * after an earlier iteration: no message has gone on it, so the service applied nothing, and no
   * stream opened ahead waits longer than one iteration for its chunks (the call's deadline).
   */
  private openFinishAhead(role: DeviceRole): void {
    const before = this.finishes.get(role);
    if (before?.written)
      throw protocolError(`a stop-and-copy chunk of ${role} before the last iteration ended`);
    before?.cancel?.();
    const own = new AbortController();
    const call = this.devices.finishImport(role, AbortSignal.any([this.aborts.signal, own.signal]));
    this.finishes.set(role, { call, written: false, cancel: () => own.abort() });
  }

  /**
   * Every stop-and-copy chunk was sent: waits until each service applied, resumed and made durable
   * its devices; when the last of them resumed.
   */
  async switchover(): Promise<{ devices: string[]; deviceMessages: number; resumedAtUs: bigint }> {
    if (this.finishes.size === 0 || this.prepares.size > 0)
      throw protocolError("switchover without a complete stop-and-copy");
    const devices: string[] = [];
    let resumedAtUs = 0n;
    for (const [role, stream] of this.finishes) {
      if (!stream.answer) throw protocolError(`switchover before the last stop-and-copy chunk of ${role}`);
      const answer = await stream.answer;
      devices.push(...answer.devices);
      if (answer.resumedAtUs > resumedAtUs) resumedAtUs = answer.resumedAtUs;
    }
    return { devices, deviceMessages: this.finishMessages, resumedAtUs };
  }

  /** Ends every open device-service stream (the migration failed). */
  cancel(): void {
    this.aborts.abort();
  }
}
