import { chmodSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { closeFd } from "./file-descriptor.js";
import { watchReadable, type FdWatch } from "./fd-watch.js";
import {
  FrameReader,
  HandoffRefusal,
  MAX_HANDOFF_MESSAGE,
  handoffFrame,
  type HandoffMessage,
} from "./handoff-framing.js";
import {
  MAX_FDS_PER_MESSAGE,
  acceptUnix,
  listenUnix,
  peerCredentials,
  receiveWithFds,
  sendWithFds,
  type PeerCredentials,
} from "./unix-socket.js";

/**
 * The fds that came with one message. The session takes the ones it keeps (they are its to
 * close from then on); the server closes the others once the session has seen the message.
 */
export class ReceivedFds {
  private readonly taken = new Set<number>();

  constructor(private readonly fds: readonly number[]) {}

  get length(): number {
    return this.fds.length;
  }

  /** `value` checked as an index into this message's fds (FD_MISSING naming `field` if it is not one). */
  index(value: unknown, field: string): number {
    if (!Number.isInteger(value) || (value as number) < 0 || (value as number) >= this.fds.length) {
      throw new HandoffRefusal(
        "FD_MISSING",
        `${field} must index one of the ${this.fds.length} fds sent with the message`,
      );
    }
    return value as number;
  }

  /** The fd at a checked index, now the caller's. */
  take(index: number): number {
    this.taken.add(index);
    return this.fds[index]!;
  }

  /** Closes every fd nobody took. */
  closeRest(): void {
    this.fds.forEach((fd, i) => this.taken.has(i) || closeQuietly(fd));
  }
}

/** One VMM's connection, as a session sees it. */
export interface HandoffConnection {
  /** Who is at the other end (SO_PEERCRED, read when it connected). */
  readonly peer: PeerCredentials;
  /** Sends one message, and `fds` with it (the peer gets its own copies). */
  send(message: HandoffMessage, fds?: readonly number[]): void;
  /** Ends the connection from the service's side (the session's end() is called). */
  end(): void;
}

/** What a service does with one connection's messages; the server does the rest. */
export interface HandoffSession {
  /** One message from the VMM; throws HandoffRefusal to refuse it (the connection then ends). */
  message(message: HandoffMessage, fds: ReceivedFds): void;
  /** The connection ended: the VMM closed it or exited, a message was refused, or the server closed. Called once. */
  end(): void;
}

export interface HandoffServerOptions {
  /** Whether a peer may connect (default: root or this process's own user). */
  allowPeer?: (peer: PeerCredentials) => boolean;
  /** Told of every refusal (a peer not allowed, a message refused). */
  log?: (event: { event: "refused"; peer: PeerCredentials; reason: string }) => void;
}

/** The socket file's mode: the service's user and group may connect; SO_PEERCRED decides who may stay. */
const SOCKET_MODE = 0o660;

interface Connection {
  fd: number;
  peer: PeerCredentials;
  watch: FdWatch;
  session: HandoffSession | undefined;
  /** Fds received with bytes of a message not yet whole. */
  pending: number[];
  ended: boolean;
}

/**
 * A VMM handoff socket (docs/vmm-handoff.md): a Unix stream socket whose file has mode 0660
 * (bound in a private folder and renamed into place, so that no one connects before the mode is
 * set), every peer checked with SO_PEERCRED and refused (PEER_NOT_ALLOWED, logged) unless
 * allowed, length-prefixed JSON messages with their fds as SCM_RIGHTS. A connection lasts as long
 * as the VMM keeps it open: its end is the VMM's end. What the messages mean is the session's
 * (`open` makes one per allowed connection); a refusal is sent as a `refused` message, logged,
 * and ends the connection, closing the fds it carried.
 */
export class HandoffServer {
  private readonly connections = new Set<Connection>();
  private readonly watch: FdWatch;

  private constructor(
    readonly path: string,
    private readonly listenFd: number,
    private readonly open: (connection: HandoffConnection) => HandoffSession,
    private readonly options: HandoffServerOptions,
  ) {
    this.watch = watchReadable(listenFd, () => this.acceptAll(), { keepAlive: false });
  }

  static listen(
    path: string,
    open: (connection: HandoffConnection) => HandoffSession,
    options: HandoffServerOptions = {},
  ): HandoffServer {
    const folder = mkdtempSync(join(dirname(path), ".handoff-"));
    try {
      const bound = join(folder, "socket");
      const fd = listenUnix(bound);
      try {
        chmodSync(bound, SOCKET_MODE);
        renameSync(bound, path); // replaces a stale socket file of an earlier run
      } catch (error) {
        closeQuietly(fd);
        throw error;
      }
      return new HandoffServer(path, fd, open, options);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  }

  private acceptAll(): void {
    for (let fd = acceptUnix(this.listenFd); fd !== undefined; fd = acceptUnix(this.listenFd)) this.serve(fd);
  }

  private serve(fd: number): void {
    const peer = peerCredentials(fd);
    const allowed = this.options.allowPeer ?? ((p) => p.uid === 0 || p.uid === process.getuid?.());
    if (!allowed(peer)) {
      this.refuse(
        fd,
        peer,
        new HandoffRefusal("PEER_NOT_ALLOWED", `user ${peer.uid} (pid ${peer.pid}) may not hand fds over`),
      );
      closeQuietly(fd);
      return;
    }
    const reader = new FrameReader();
    const connection: Connection = {
      fd,
      peer,
      session: undefined,
      pending: [],
      ended: false,
      watch: watchReadable(fd, () => this.receive(connection, reader)),
    };
    this.connections.add(connection);
    connection.session = this.open({
      peer,
      send: (message, fds = []) => sendWithFds(fd, handoffFrame(message), fds),
      end: () => this.end(connection),
    });
  }

  private receive(connection: Connection, reader: FrameReader): void {
    try {
      for (
        let got = receiveWithFds(connection.fd, MAX_HANDOFF_MESSAGE + 4, MAX_FDS_PER_MESSAGE);
        got && !connection.ended;
        got = receiveWithFds(connection.fd, MAX_HANDOFF_MESSAGE + 4, MAX_FDS_PER_MESSAGE)
      ) {
        if (got.data.length === 0) return this.end(connection);
        connection.pending.push(...got.fds);
        if (got.fdsTruncated)
          throw new HandoffRefusal("TOO_MANY_FDS", `at most ${MAX_FDS_PER_MESSAGE} fds per message`);
        reader.push(got.data);
        for (let message = reader.next(); message && !connection.ended; message = reader.next()) {
          const fds = new ReceivedFds(connection.pending.splice(0));
          try {
            connection.session!.message(message, fds);
          } finally {
            fds.closeRest();
          }
        }
      }
    } catch (error) {
      const refusal =
        error instanceof HandoffRefusal ? error : new HandoffRefusal("HANDOFF_FAILED", String(error));
      this.refuse(connection.fd, connection.peer, refusal);
      this.end(connection);
    }
  }

  private refuse(fd: number, peer: PeerCredentials, refusal: HandoffRefusal): void {
    this.options.log?.({ event: "refused", peer, reason: `${refusal.reason}: ${refusal.message}` });
    try {
      sendWithFds(
        fd,
        handoffFrame({
          type: "refused",
          code: "PERMISSION_DENIED",
          reason: refusal.reason,
          message: refusal.message,
        }),
      );
    } catch {
      // the peer is gone already
    }
  }

  private end(connection: Connection): void {
    if (connection.ended) return;
    connection.ended = true;
    connection.watch.close();
    this.connections.delete(connection);
    connection.pending.splice(0).forEach(closeQuietly);
    closeQuietly(connection.fd);
    connection.session?.end();
  }

  /** Stops listening, removes the socket file and ends every connection. */
  close(): void {
    this.watch.close();
    closeQuietly(this.listenFd);
    rmSync(this.path, { force: true });
    for (const connection of [...this.connections]) this.end(connection);
  }
}

function closeQuietly(fd: number): void {
  try {
    closeFd(fd);
  } catch {
    // already closed
  }
}
