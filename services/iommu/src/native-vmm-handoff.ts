import {
  HandoffRefusal,
  HandoffService,
  VmmGoneListeners,
  closeFd,
  requireResourceId,
  requireVersion,
  type HandoffConnection,
  type HandoffMessage,
  type HandoffServerOptions,
  type HandoffSession,
  type PeerCredentials,
  type ReceivedFds,
} from "@vplane/host-kernel";
import type { NativeSmmuFds } from "./native-smmu-objects.js";

export const SMMU_HANDOFF_PROTOCOL_VERSION = 1;

/** Most devices one SMMU's handoff carries (the fds ride in one message, at most 253 in all). */
export const MAX_HANDED_OVER_DEVICES = 252;

/**
 * The fds a VMM handed over for one SMMU: the service's own copies, usable until the VMM goes
 * or the service releases them. Single use: an SMMU binds the devices to the iommufd, and a VFIO
 * device cdev stays bound for as long as it is open, so a new SMMU needs new fds.
 */
export interface HandedOverSmmu {
  readonly vm: string;
  readonly smmu: string;
  readonly peer: PeerCredentials;
  readonly fds: NativeSmmuFds;
  /** The VMM closed its end (exited) or the service released the fds: they are closed. */
  readonly gone: boolean;
  /**
   * Calls `listener` once when the VMM goes away, before the fds are closed (so that the SMMU
   * made on them can destroy its iommufd objects first); at once if it has gone already.
   */
  whenGone(listener: () => void): void;
  /** The service is done with the fds (the SMMU was deleted, or could not be made): closes them and ends the connection, telling the VMM why. */
  release(why: string): void;
}

export interface SmmuHandoffOptions {
  /** Whether a peer may hand fds over (default: root or this process's own user). */
  allowPeer?: HandoffServerOptions["allowPeer"];
  /** Told of every refusal, every handoff, every VMM that went away and every release. */
  log?: (event: {
    event: "refused" | "adopted" | "vmm-gone" | "released";
    smmu?: string;
    peer?: PeerCredentials;
    reason?: string;
  }) => void;
}

/**
 * The VMM → iommu handoff (docs/vmm-handoff.md) on the shared handoff socket (host-kernel's
 * HandoffServer: socket, framing, peer check, fd passing): a VMM hands over, for one SMMU
 * `vms/{vm}/smmus/{smmu}`, its iommufd and the VFIO device cdevs of the devices behind that SMMU
 * with their StreamIDs; a NATIVE SMMU of that name (CreateSmmu, ImportDeviceState) is made on
 * them. The connection's end is the VMM's end.
 */
export class SmmuHandoffServer extends HandoffService<SmmuHandoffOptions> {
  private readonly handedOver = new Map<string, HandedOverSmmuState>();

  static listen(path: string, options: SmmuHandoffOptions = {}): SmmuHandoffServer {
    return new SmmuHandoffServer(path, options);
  }

  /** The fds a VMM handed over for the SMMU `vms/{vm}/smmus/{smmu}`, while they are usable. */
  smmu(name: string): HandedOverSmmu | undefined {
    return this.handedOver.get(name);
  }

  protected session(connection: HandoffConnection): HandoffSession {
    let owned: HandedOverSmmuState | undefined;
    return {
      message: (message, fds) => {
        if (message.type !== "adopt")
          throw new HandoffRefusal(
            "MESSAGE_INVALID",
            `unexpected message type ${JSON.stringify(message.type)}`,
          );
        if (owned)
          throw new HandoffRefusal("ALREADY_ADOPTED", `this connection already handed over ${owned.name}`);
        owned = this.adopt(connection, message, fds);
      },
      end: () => {
        if (!owned || owned.gone) return;
        this.handedOver.delete(owned.name);
        owned.vmmGone();
        this.options.log?.({ event: "vmm-gone", smmu: owned.name, peer: owned.peer });
      },
    };
  }

  private adopt(
    connection: HandoffConnection,
    message: HandoffMessage,
    fds: ReceivedFds,
  ): HandedOverSmmuState {
    requireVersion(message, SMMU_HANDOFF_PROTOCOL_VERSION);
    const vm = requireResourceId(message, "vm", "VM_ID_INVALID");
    const smmu = requireResourceId(message, "smmu", "SMMU_ID_INVALID");
    const name = `vms/${vm}/smmus/${smmu}`;
    const iommufd = fds.index(message.iommufd, "iommufd");
    const devices = parseDevices(message.devices, fds);
    if (new Set([iommufd, ...devices.map((d) => d.fd)]).size !== devices.length + 1)
      throw new HandoffRefusal("MESSAGE_INVALID", "iommufd and every device name fds of their own");
    if (this.handedOver.has(name))
      throw new HandoffRefusal("SMMU_ALREADY_ADOPTED", `fds for ${name} were already handed over`);
    const state = new HandedOverSmmuState(
      vm,
      smmu,
      connection,
      {
        iommufd: fds.take(iommufd),
        devices: new Map(devices.map((d) => [d.streamId, fds.take(d.fd)])),
      },
      (why) => {
        this.handedOver.delete(name);
        this.options.log?.({ event: "released", smmu: name, peer: connection.peer, reason: why });
      },
    );
    this.handedOver.set(name, state);
    connection.send({ type: "adopted", version: SMMU_HANDOFF_PROTOCOL_VERSION, vm, smmu });
    this.options.log?.({ event: "adopted", smmu: name, peer: connection.peer });
    return state;
  }
}

class HandedOverSmmuState implements HandedOverSmmu {
  private readonly goneListeners = new VmmGoneListeners();

  constructor(
    readonly vm: string,
    readonly smmu: string,
    private readonly connection: HandoffConnection,
    readonly fds: NativeSmmuFds,
    private readonly onRelease: (why: string) => void,
  ) {}

  get name(): string {
    return `vms/${this.vm}/smmus/${this.smmu}`;
  }

  get peer(): PeerCredentials {
    return this.connection.peer;
  }

  get gone(): boolean {
    return this.goneListeners.gone;
  }

  whenGone(listener: () => void): void {
    this.goneListeners.add(listener);
  }

  /** The VMM left: the SMMU on these fds learns it first, then the fds are closed. */
  vmmGone(): void {
    this.goneListeners.fire();
    this.closeFds();
  }

  release(why: string): void {
    if (this.gone) return;
    this.goneListeners.fire(false);
    this.closeFds();
    this.onRelease(why);
    try {
      this.connection.send({ type: "released", vm: this.vm, smmu: this.smmu, reason: why });
    } catch {
      // the VMM is gone already
    }
    this.connection.end();
  }

  private closeFds(): void {
    for (const fd of [this.fds.iommufd, ...this.fds.devices.values()]) {
      try {
        closeFd(fd);
      } catch {
        // already closed
      }
    }
  }
}

function parseDevices(value: unknown, fds: ReceivedFds): { streamId: number; fd: number }[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_HANDED_OVER_DEVICES) {
    throw new HandoffRefusal(
      "MESSAGE_INVALID",
      `devices is a list of 1 to ${MAX_HANDED_OVER_DEVICES} {streamId, fd}: an SMMU is made on a device`,
    );
  }
  const seen = new Set<number>();
  return value.map((d: { streamId?: unknown; fd?: unknown }, i) => {
    const streamId = d?.streamId;
    if (!Number.isInteger(streamId) || (streamId as number) < 0 || (streamId as number) > 0xffffffff)
      throw new HandoffRefusal("MESSAGE_INVALID", `devices[${i}].streamId is a StreamID (0 to 2^32-1)`);
    if (seen.has(streamId as number))
      throw new HandoffRefusal(
        "DEVICE_DUPLICATE",
        `devices[${i}]: StreamID ${String(streamId)} is listed twice`,
      );
    seen.add(streamId as number);
    return { streamId: streamId as number, fd: fds.index(d.fd, `devices[${i}].fd`) };
  });
}
