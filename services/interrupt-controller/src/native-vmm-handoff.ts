import { chmodSync, rmSync } from "node:fs";
import {
  MAX_FDS_PER_MESSAGE,
  acceptUnix,
  closeFd,
  listenUnix,
  peerCredentials,
  receiveWithFds,
  sendWithFds,
  watchReadable,
  type FdWatch,
  type PeerCredentials,
} from "@vplane/host-kernel";
import { KvmVm } from "./native-kvm-vm.js";

/** Largest handoff message (the JSON), bytes. */
export const MAX_HANDOFF_MESSAGE = 64 * 1024;
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
  allowPeer?: (peer: PeerCredentials) => boolean;
  /** Told of every refusal and every VMM that went away. */
  log?: (event: {
    event: "refused" | "adopted" | "vmm-gone";
    vm?: string;
    peer?: PeerCredentials;
    reason?: string;
  }) => void;
}

type Message = { type: string; [key: string]: unknown };

class Refusal extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The VMM → interrupt-controller handoff (docs/vmm-handoff.md): a Unix stream socket, mode 0660,
 * where a VMM hands over its KVM VM fd and vCPU fds with SCM_RIGHTS and later receives the KVM
 * XIVE device fd the same way. The peer is checked with SO_PEERCRED; the connection stays open
 * for the VM's life and its end is the VMM's end. Messages: a 4-byte big-endian length, then that
 * much UTF-8 JSON; the fds ride with the message that lists them.
 */
export class VmmHandoffServer {
  private readonly adopted = new Map<string, AdoptedVm>();
  private readonly connections = new Set<{ fd: number; watch: FdWatch }>();
  private readonly watch: FdWatch;
  private onGone: (vm: AdoptedVm) => void = () => undefined;

  private constructor(
    readonly path: string,
    private readonly listenFd: number,
    private readonly options: HandoffOptions,
  ) {
    this.watch = watchReadable(listenFd, () => this.acceptAll(), { keepAlive: false });
  }

  static listen(path: string, options: HandoffOptions = {}): VmmHandoffServer {
    rmSync(path, { force: true });
    const fd = listenUnix(path);
    chmodSync(path, 0o660);
    return new VmmHandoffServer(path, fd, options);
  }

  /** The VM a VMM handed over under `vm`, while its VMM is there. */
  vm(vm: string): AdoptedVm | undefined {
    return this.adopted.get(vm);
  }

  /** Called when a VMM that handed a VM over goes away. */
  whenVmmGone(listener: (vm: AdoptedVm) => void): void {
    this.onGone = listener;
  }

  private acceptAll(): void {
    for (let fd = acceptUnix(this.listenFd); fd !== undefined; fd = acceptUnix(this.listenFd)) this.serve(fd);
  }

  private serve(fd: number): void {
    const peer = peerCredentials(fd);
    const allowed =
      this.options.allowPeer ?? ((p: PeerCredentials) => p.uid === 0 || p.uid === process.getuid?.());
    if (!allowed(peer)) {
      this.refuse(
        fd,
        peer,
        new Refusal("PEER_NOT_ALLOWED", `user ${peer.uid} (pid ${peer.pid}) may not hand VMs over`),
      );
      closeFd(fd);
      return;
    }
    let pending: Uint8Array = new Uint8Array(0);
    let fds: number[] = [];
    let owned: AdoptedVmState | undefined;
    const connection = {
      fd,
      watch: watchReadable(fd, () => {
        try {
          for (
            let got = receiveWithFds(fd, MAX_HANDOFF_MESSAGE + 4, MAX_FDS_PER_MESSAGE);
            got;
            got = receiveWithFds(fd, MAX_HANDOFF_MESSAGE + 4, MAX_FDS_PER_MESSAGE)
          ) {
            if (got.data.length === 0) return this.hangUp(connection, owned, fds);
            if (got.fdsTruncated)
              throw new Refusal("TOO_MANY_FDS", `at most ${MAX_FDS_PER_MESSAGE} fds per message`);
            pending = concat(pending, got.data);
            fds = fds.concat(got.fds);
            for (let frame = takeFrame(pending); frame; frame = takeFrame(pending)) {
              pending = frame.rest;
              owned = this.handle(connection, peer, frame.message, fds, owned);
              fds = [];
            }
          }
        } catch (error) {
          this.refuse(
            fd,
            peer,
            error instanceof Refusal ? error : new Refusal("HANDOFF_FAILED", String(error)),
          );
          this.hangUp(connection, owned, fds);
        }
      }),
    };
    this.connections.add(connection);
  }

  private handle(
    connection: { fd: number },
    peer: PeerCredentials,
    message: Message,
    fds: number[],
    owned: AdoptedVmState | undefined,
  ): AdoptedVmState {
    if (message.type === "adopt") {
      if (owned) throw new Refusal("ALREADY_ADOPTED", `this connection already handed over VM ${owned.vm}`);
      const { vm, vmFd, vcpus } = parseAdopt(message, fds.length);
      if (this.adopted.has(vm)) throw new Refusal("VM_ALREADY_ADOPTED", `VM ${vm} was already handed over`);
      const kvm = KvmVm.adopt(fds[vmFd]!, new Map(vcpus.map((v) => [v.vcpuId, fds[v.fd]!])));
      closeUnlisted(fds, [vmFd, ...vcpus.map((v) => v.fd)]);
      const adopted = new AdoptedVmState(vm, kvm, peer, connection.fd);
      this.adopted.set(vm, adopted);
      send(connection.fd, { type: "adopted", version: HANDOFF_PROTOCOL_VERSION, vm });
      this.options.log?.({ event: "adopted", vm, peer });
      return adopted;
    }
    if (message.type === "vcpus" && owned) {
      const vcpus = parseVcpus(message.vcpus, fds.length);
      for (const v of vcpus) owned.kvm.addVcpu(v.vcpuId, fds[v.fd]!);
      closeUnlisted(
        fds,
        vcpus.map((v) => v.fd),
      );
      send(connection.fd, { type: "vcpus-added", vm: owned.vm, vcpus: vcpus.map((v) => v.vcpuId) });
      return owned;
    }
    fds.forEach(closeQuietly);
    throw new Refusal("MESSAGE_INVALID", `unexpected message type ${JSON.stringify(message.type)}`);
  }

  private refuse(fd: number, peer: PeerCredentials, refusal: Refusal): void {
    this.options.log?.({ event: "refused", peer, reason: `${refusal.reason}: ${refusal.message}` });
    try {
      send(fd, {
        type: "refused",
        code: "PERMISSION_DENIED",
        reason: refusal.reason,
        message: refusal.message,
      });
    } catch {
      // the peer is gone already
    }
  }

  private hangUp(
    connection: { fd: number; watch: FdWatch },
    owned: AdoptedVmState | undefined,
    fds: number[],
  ): void {
    connection.watch.close();
    this.connections.delete(connection);
    fds.forEach(closeQuietly);
    closeQuietly(connection.fd);
    if (owned) {
      owned.markGone();
      this.adopted.delete(owned.vm);
      this.options.log?.({ event: "vmm-gone", vm: owned.vm, peer: owned.peer });
      this.onGone(owned);
    }
  }

  /** Stops listening, removes the socket file and lets every VMM go. */
  close(): void {
    this.watch.close();
    closeQuietly(this.listenFd);
    rmSync(this.path, { force: true });
    for (const connection of [...this.connections]) {
      const owned = [...this.adopted.values()].find(
        (a) => (a as AdoptedVmState).connectionFd === connection.fd,
      ) as AdoptedVmState | undefined;
      this.hangUp(connection, owned, []);
    }
  }
}

class AdoptedVmState implements AdoptedVm {
  gone = false;
  private readonly listeners: (() => void)[] = [];

  constructor(
    readonly vm: string,
    readonly kvm: KvmVm,
    readonly peer: PeerCredentials,
    readonly connectionFd: number,
  ) {}

  sendDevice(deviceFd: number, controller: string): void {
    send(
      this.connectionFd,
      { type: "device", vm: this.vm, controller, esbPageOffset: 4, timaPageOffset: 0 },
      [deviceFd],
    );
  }

  whenGone(listener: () => void): void {
    if (this.gone) listener();
    else this.listeners.push(listener);
  }

  markGone(): void {
    this.gone = true;
    this.kvm.close();
    for (const listener of this.listeners.splice(0)) listener();
  }
}

/** One message as it goes on the wire: a 4-byte big-endian length, then the JSON. */
export function handoffFrame(message: unknown): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(message));
  const frame = new Uint8Array(4 + json.length);
  new DataView(frame.buffer).setUint32(0, json.length);
  frame.set(json, 4);
  return frame;
}

function send(fd: number, message: Message, fds: number[] = []): void {
  sendWithFds(fd, handoffFrame(message), fds);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function takeFrame(bytes: Uint8Array): { message: Message; rest: Uint8Array } | undefined {
  if (bytes.length < 4) return undefined;
  const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0);
  if (length > MAX_HANDOFF_MESSAGE)
    throw new Refusal("MESSAGE_TOO_LARGE", `a message is at most ${MAX_HANDOFF_MESSAGE} bytes`);
  if (bytes.length < 4 + length) return undefined;
  let message: unknown;
  try {
    message = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + length)));
  } catch {
    throw new Refusal("MESSAGE_INVALID", "a message is JSON");
  }
  if (typeof message !== "object" || message === null || typeof (message as Message).type !== "string") {
    throw new Refusal("MESSAGE_INVALID", "a message is a JSON object with a string 'type'");
  }
  return { message: message as Message, rest: bytes.slice(4 + length) };
}

const VM_ID = /^[a-z][a-z0-9-]{0,62}$/;

function parseAdopt(
  message: Message,
  fdCount: number,
): { vm: string; vmFd: number; vcpus: { vcpuId: number; fd: number }[] } {
  if (message.version !== HANDOFF_PROTOCOL_VERSION)
    throw new Refusal("VERSION_UNSUPPORTED", `protocol version ${HANDOFF_PROTOCOL_VERSION} only`);
  if (typeof message.vm !== "string" || !VM_ID.test(message.vm))
    throw new Refusal("VM_ID_INVALID", "vm is a VM id");
  return {
    vm: message.vm,
    vmFd: fdIndex(message.vmFd, fdCount, "vmFd"),
    vcpus: parseVcpus(message.vcpus ?? [], fdCount),
  };
}

function parseVcpus(value: unknown, fdCount: number): { vcpuId: number; fd: number }[] {
  if (!Array.isArray(value)) throw new Refusal("MESSAGE_INVALID", "vcpus is a list");
  return value.map((v: { vcpuId?: unknown; fd?: unknown }, i) => {
    if (!Number.isInteger(v?.vcpuId) || (v.vcpuId as number) < 0)
      throw new Refusal("MESSAGE_INVALID", `vcpus[${i}].vcpuId`);
    return { vcpuId: v.vcpuId as number, fd: fdIndex(v.fd, fdCount, `vcpus[${i}].fd`) };
  });
}

function fdIndex(value: unknown, fdCount: number, field: string): number {
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) >= fdCount) {
    throw new Refusal("FD_MISSING", `${field} must index one of the ${fdCount} fds sent with the message`);
  }
  return value as number;
}

function closeUnlisted(fds: number[], used: number[]): void {
  fds.forEach((fd, i) => used.includes(i) || closeQuietly(fd));
}

function closeQuietly(fd: number): void {
  try {
    closeFd(fd);
  } catch {
    // already closed
  }
}
