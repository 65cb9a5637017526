import {
  HandoffRefusal,
  HandoffService,
  VmmGoneListeners,
  requireResourceId,
  requireVersion,
  type HandoffConnection,
  type HandoffMessage,
  type HandoffServerOptions,
  type HandoffSession,
  type PeerCredentials,
  type ReceivedFds,
} from "@vplane/host-kernel";
import { KvmVm } from "./native-kvm-vm.js";

export const HANDOFF_PROTOCOL_VERSION = 1;

/** A VMM's VM as handed over: the service's own copies of its fds, usable until the VMM goes. */
export interface AdoptedVm {
  readonly vm: string;
  readonly kvm: KvmVm;
  readonly peer: PeerCredentials;
  /** The VMM closed its end (exited): the fds were closed here, the VM is no longer usable. */
  readonly gone: boolean;
  /** Sends the VM's KVM XIVE device fd back to the VMM (it maps the ESB and TIMA pages from it). */
  sendDevice(deviceFd: number, controller: string): void;
  /** Calls `listener` once when the VMM goes away (at once if it has gone already). */
  whenGone(listener: () => void): void;
}

export interface HandoffOptions {
  /** Whether a peer may hand a VM over (default: root or this process's own user). */
  allowPeer?: HandoffServerOptions["allowPeer"];
  /** Told of every refusal and every VMM that went away. */
  log?: (event: {
    event: "refused" | "adopted" | "vmm-gone";
    vm?: string;
    peer?: PeerCredentials;
    reason?: string;
  }) => void;
}

/**
 * The VMM → interrupt-controller handoff (docs/vmm-handoff.md) on the shared handoff socket
 * (host-kernel's HandoffServer: socket, framing, peer check, fd passing): a VMM hands over its
 * KVM VM fd and vCPU fds and later receives the KVM XIVE device fd on the same connection, whose
 * end is the VMM's end.
 */
export class VmmHandoffServer extends HandoffService<HandoffOptions> {
  private readonly adopted = new Map<string, AdoptedVmState>();
  private onGone: (vm: AdoptedVm) => void = () => undefined;

  static listen(path: string, options: HandoffOptions = {}): VmmHandoffServer {
    return new VmmHandoffServer(path, options);
  }

  /** The VM a VMM handed over under `vm`, while its VMM is there. */
  vm(vm: string): AdoptedVm | undefined {
    return this.adopted.get(vm);
  }

  /** Called when a VMM that handed a VM over goes away. */
  whenVmmGone(listener: (vm: AdoptedVm) => void): void {
    this.onGone = listener;
  }

  protected session(connection: HandoffConnection): HandoffSession {
    let owned: AdoptedVmState | undefined;
    return {
      message: (message, fds) => {
        owned = this.handle(connection, message, fds, owned);
      },
      end: () => {
        if (!owned) return;
        owned.markGone();
        this.adopted.delete(owned.vm);
        this.options.log?.({ event: "vmm-gone", vm: owned.vm, peer: owned.peer });
        this.onGone(owned);
      },
    };
  }

  private handle(
    connection: HandoffConnection,
    message: HandoffMessage,
    fds: ReceivedFds,
    owned: AdoptedVmState | undefined,
  ): AdoptedVmState {
    if (message.type === "adopt") {
      if (owned)
        throw new HandoffRefusal("ALREADY_ADOPTED", `this connection already handed over VM ${owned.vm}`);
      const { vm, vmFd, vcpus } = parseAdopt(message, fds);
      if (this.adopted.has(vm))
        throw new HandoffRefusal("VM_ALREADY_ADOPTED", `VM ${vm} was already handed over`);
      const kvm = KvmVm.adopt(fds.take(vmFd), new Map(vcpus.map((v) => [v.vcpuId, fds.take(v.fd)])));
      const adopted = new AdoptedVmState(vm, kvm, connection);
      this.adopted.set(vm, adopted);
      connection.send({ type: "adopted", version: HANDOFF_PROTOCOL_VERSION, vm });
      this.options.log?.({ event: "adopted", vm, peer: connection.peer });
      return adopted;
    }
    if (message.type === "vcpus" && owned) {
      const vcpus = parseVcpus(message.vcpus, fds);
      for (const v of vcpus) owned.kvm.addVcpu(v.vcpuId, fds.take(v.fd));
      connection.send({ type: "vcpus-added", vm: owned.vm, vcpus: vcpus.map((v) => v.vcpuId) });
      return owned;
    }
    throw new HandoffRefusal("MESSAGE_INVALID", `unexpected message type ${JSON.stringify(message.type)}`);
  }
}

class AdoptedVmState implements AdoptedVm {
  private readonly goneListeners = new VmmGoneListeners();

  constructor(
    readonly vm: string,
    readonly kvm: KvmVm,
    private readonly connection: HandoffConnection,
  ) {}

  get peer(): PeerCredentials {
    return this.connection.peer;
  }

  get gone(): boolean {
    return this.goneListeners.gone;
  }

  sendDevice(deviceFd: number, controller: string): void {
    this.connection.send({ type: "device", vm: this.vm, controller, esbPageOffset: 4, timaPageOffset: 0 }, [
      deviceFd,
    ]);
  }

  whenGone(listener: () => void): void {
    this.goneListeners.add(listener);
  }

  markGone(): void {
    this.kvm.close();
    this.goneListeners.fire();
  }
}

function parseAdopt(
  message: HandoffMessage,
  fds: ReceivedFds,
): { vm: string; vmFd: number; vcpus: { vcpuId: number; fd: number }[] } {
  requireVersion(message, HANDOFF_PROTOCOL_VERSION);
  return {
    vm: requireResourceId(message, "vm", "VM_ID_INVALID"),
    vmFd: fds.index(message.vmFd, "vmFd"),
    vcpus: parseVcpus(message.vcpus ?? [], fds),
  };
}

function parseVcpus(value: unknown, fds: ReceivedFds): { vcpuId: number; fd: number }[] {
  if (!Array.isArray(value)) throw new HandoffRefusal("MESSAGE_INVALID", "vcpus is a list");
  return value.map((v: { vcpuId?: unknown; fd?: unknown }, i) => {
    if (!Number.isInteger(v?.vcpuId) || (v.vcpuId as number) < 0)
      throw new HandoffRefusal("MESSAGE_INVALID", `vcpus[${i}].vcpuId`);
    return { vcpuId: v.vcpuId as number, fd: fds.index(v.fd, `vcpus[${i}].fd`) };
  });
}
