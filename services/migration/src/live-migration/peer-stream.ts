// The source's end of ReceiveMigration: send a message (respecting back-pressure), then wait for
// the destination's next acknowledgement. A failed or cancelled stream rejects the waiter with the
// destination's error as a VplaneError (UNAVAILABLE when the connection dropped).
import type { ClientDuplexStream, ServiceError } from "@grpc/grpc-js";
import type {
  ReceiveMigrationRequest,
  ReceiveMigrationResponse,
} from "@vplane/proto/gen/vplane/migration/v1/live_migration";
import { VplaneError, fromServiceError } from "@vplane/service-kit";

type Ack = NonNullable<ReceiveMigrationResponse["message"]>;
/** The value each kind of acknowledgement carries. */
type AckValue<K extends Ack["$case"]> = Extract<Ack, { $case: K }>["value"];

export class PeerStream {
  private readonly acks: Ack[] = [];
  private failure: VplaneError | undefined;
  private ended = false;
  private wake: (() => void) | undefined;
  /** Resolves with the call's final status (the destination's answer, or a local cancel). */
  private readonly settled: Promise<void>;
  private hasStatus = false;
  /** The destination takes the stop's last chunks in one message (it said so with ready). */
  takesDeviceChunks = false;

  constructor(private readonly call: ClientDuplexStream<ReceiveMigrationRequest, ReceiveMigrationResponse>) {
    call.on("data", (response: ReceiveMigrationResponse) => {
      if (response.takesDeviceChunks) this.takesDeviceChunks = true;
      if (response.message) this.acks.push(response.message);
      this.notify();
    });
    call.on("error", (error: ServiceError) => {
      this.failure ??= fromServiceError(error);
      this.notify();
    });
    call.on("end", () => {
      this.ended = true;
      this.notify();
    });
    this.settled = new Promise((resolve) =>
      call.once("status", () => {
        this.hasStatus = true;
        resolve();
      }),
    );
  }

  /** Writes `message`; under back-pressure waits for the stream to drain, or to fail. */
  async send(message: ReceiveMigrationRequest["message"]): Promise<void> {
    this.throwIfFailed();
    if (this.call.write({ message })) return;
    // A stream that fails or is interrupted never drains: wait for either.
    const drained = () => this.notify();
    this.call.once("drain", drained);
    await new Promise<void>((resolve) => (this.wake = resolve));
    this.call.off("drain", drained);
    this.throwIfFailed();
  }

  /** The next acknowledgement, which must be of kind `kind`. */
  async expect<K extends Ack["$case"]>(kind: K): Promise<AckValue<K>> {
    while (this.acks.length === 0) {
      if (this.failure) throw this.failure;
      if (this.ended) throw this.protocolError(`the destination ended the stream before "${kind}"`);
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    const ack = this.acks.shift()!;
    if (ack.$case !== kind)
      throw this.protocolError(`expected "${kind}" from the destination, got "${ack.$case}"`);
    return ack.value as unknown as AckValue<K>; // checked above: ack.$case === kind
  }

  /** Ends the stream normally (after switchover). */
  finish(): void {
    this.call.end();
  }

  /** Stops waiting for the destination (a cancel, a timeout): the waiting send or expect throws `reason`. */
  interrupt(reason: VplaneError): void {
    this.failure ??= reason;
    this.notify();
  }

  /**
   * Gives the migration up before its commit: ends the stream without one, which makes the
   * destination discard all it received (imported devices, RAM file, its reservation of the VM),
   * and waits, at most `timeoutMs`, for its final answer, which it sends once it has let go. So a
   * migration that ends failed or cancelled leaves nothing on the destination, and the VM may be
   * migrated there again at once. Past the wait the call is cancelled (the destination discards
   * on that too, once it notices).
   */
  async abandon(timeoutMs: number): Promise<void> {
    if (!this.hasStatus) this.call.end();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.settled, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    this.call.cancel();
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  private notify() {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** The error of an answer the protocol does not allow. */
  protocolError(message: string): VplaneError {
    return new VplaneError({ code: "INTERNAL", reason: "MIGRATION_PROTOCOL_ERROR", message });
  }
}
