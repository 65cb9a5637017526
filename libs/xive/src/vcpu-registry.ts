import { Errno } from "@vplane/model-kit";
import { kvmError, type XiveError, type XiveErrorCode } from "./xive-error.js";

/** "No vCPU has this server": ENOENT or EINVAL depending on the KVM call (xive.md §1.2-§1.6). */
export function serverNotConnected(server: number, errno: number, code: XiveErrorCode): XiveError {
  return kvmError(
    errno,
    code,
    "SERVER_NOT_CONNECTED",
    `no vCPU is connected with server ${server}`,
    "server",
  );
}

/** A vCPU operation (TIMA access, VP_STATE, hypercall) names a server no vCPU has: ENOENT. */
export function vcpuNotConnected(server: number, code: XiveErrorCode = "FAILED_PRECONDITION"): XiveError {
  return kvmError(
    Errno.ENOENT,
    code,
    "VCPU_NOT_CONNECTED",
    `no vCPU is connected with server ${server}`,
    "server",
  );
}

/**
 * The vCPUs connected to an interrupt controller (vCPU id → server) and the connect checks both
 * KVM devices make (xive.md §1.1): EBUSY if the vCPU already has an interrupt controller, EINVAL
 * for a server out of range, EEXIST if another vCPU has the server.
 */
export class VcpuRegistry {
  private readonly servers = new Map<number, number>();

  get size(): number {
    return this.servers.size;
  }

  /** EINVAL for a bad vCPU id, EBUSY if connected, EINVAL unless 0 ≤ server < limit. */
  checkConnect(vcpuId: number, server: number, limit: number): void {
    if (!Number.isInteger(vcpuId) || vcpuId < 0) {
      throw kvmError(Errno.EINVAL, "INVALID_ARGUMENT", "VCPU_ID_INVALID", `bad vCPU id ${vcpuId}`, "vcpu_id");
    }
    if (this.servers.has(vcpuId)) {
      throw kvmError(
        Errno.EBUSY,
        "ALREADY_EXISTS",
        "VCPU_ALREADY_CONNECTED",
        `vCPU ${vcpuId} is already connected to an interrupt controller`,
        "vcpu_id",
      );
    }
    if (!Number.isInteger(server) || server < 0 || server >= limit) {
      throw kvmError(
        Errno.EINVAL,
        "INVALID_ARGUMENT",
        "SERVER_OUT_OF_RANGE",
        `server ${server} is not below nr_servers ${limit}`,
        "server",
      );
    }
  }

  /** EEXIST when `taken` (another vCPU has the server), else records the connection. */
  add(vcpuId: number, server: number, taken: boolean): void {
    if (taken) {
      throw kvmError(
        Errno.EEXIST,
        "ALREADY_EXISTS",
        "SERVER_IN_USE",
        `server ${server} is used by another vCPU`,
        "server",
      );
    }
    this.servers.set(vcpuId, server);
  }

  /** Servers of the connected vCPUs, ascending. */
  connectedServers(): number[] {
    return [...this.servers.values()].sort((a, b) => a - b);
  }

  /** vCPU ids and servers, ascending by vCPU id. */
  entries(): { vcpuId: number; server: number }[] {
    return [...this.servers.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([vcpuId, server]) => ({ vcpuId, server }));
  }

  /** The server of vCPU `vcpuId`; undefined when it is not connected. */
  serverOf(vcpuId: number): number | undefined {
    return this.servers.get(vcpuId);
  }

  hasServer(server: number): boolean {
    for (const s of this.servers.values()) if (s === server) return true;
    return false;
  }
}
