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

  constructor(private readonly call: ClientDuplexStream<ReceiveMigrationRequest, ReceiveMigrationResponse>) {
    call.on("data", (response: ReceiveMigrationResponse) => {
      if (response.message) this.acks.push(response.message);
      this.notify();
    });
    call.on("error", (error: ServiceError) => {
      this.failure = fromServiceError(error);
      this.notify();
    });
    call.on("end", () => {
      this.ended = true;
      this.notify();
    });
  }

  async send(message: ReceiveMigrationRequest["message"]): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.call.write({ message })) return;
    await new Promise<void>((resolve) => this.call.once("drain", resolve));
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

  /** Aborts the stream: the destination sees CANCELLED and discards what it received. */
  abort(): void {
    this.call.cancel();
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
