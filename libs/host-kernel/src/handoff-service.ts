import {
  HandoffServer,
  type HandoffConnection,
  type HandoffServerOptions,
  type HandoffSession,
} from "./handoff-server.js";

/**
 * What a device service's VMM handoff has in common with the others: one HandoffServer on its
 * socket, one session per VMM connection (the subclass says what the messages mean), closed
 * with the service.
 */
export abstract class HandoffService<Options extends HandoffServerOptions> {
  private readonly server: HandoffServer;

  protected constructor(
    path: string,
    protected readonly options: Options,
  ) {
    this.server = HandoffServer.listen(path, (connection) => this.session(connection), options);
  }

  get path(): string {
    return this.server.path;
  }

  /** Stops listening, removes the socket file and lets every VMM go. */
  close(): void {
    this.server.close();
  }

  protected abstract session(connection: HandoffConnection): HandoffSession;
}

/** Listeners told once that a VMM went away; one added after that is told at once. */
export class VmmGoneListeners {
  private fired = false;
  private readonly listeners: (() => void)[] = [];

  get gone(): boolean {
    return this.fired;
  }

  add(listener: () => void): void {
    if (this.fired) listener();
    else this.listeners.push(listener);
  }

  /** Marks the VMM gone; `tell` false drops the listeners unheard (the service let go itself). */
  fire(tell = true): void {
    this.fired = true;
    const listeners = this.listeners.splice(0);
    if (tell) for (const listener of listeners) listener();
  }
}
