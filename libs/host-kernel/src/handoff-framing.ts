/**
 * The framing of vplane's VMM handoff sockets (docs/vmm-handoff.md), shared by every device
 * service that takes a VMM's fds: each message is a 4-byte big-endian length N, then N bytes of
 * UTF-8 JSON, an object with a string `type`. The fds a message refers to ride with it as one
 * SCM_RIGHTS control message. Hand-written: a length prefix and JSON are all it is, and no
 * framing library passes fds.
 */

/** Largest message (the JSON), bytes. */
export const MAX_HANDOFF_MESSAGE = 64 * 1024;

/** One handoff message. */
export type HandoffMessage = { type: string; [key: string]: unknown };

/** Why a peer or one of its messages is refused (`reason` is the wire's machine-readable name). */
export class HandoffRefusal extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = "HandoffRefusal";
  }
}

/** One message as it goes on the wire: the length, then the JSON. */
export function handoffFrame(message: unknown): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(message));
  const frame = new Uint8Array(4 + json.length);
  new DataView(frame.buffer).setUint32(0, json.length);
  frame.set(json, 4);
  return frame;
}

/** The length a frame's 4-byte header announces; MESSAGE_TOO_LARGE past the limit. */
export function frameLength(header: Uint8Array): number {
  const length = new DataView(header.buffer, header.byteOffset, 4).getUint32(0);
  if (length > MAX_HANDOFF_MESSAGE)
    throw new HandoffRefusal("MESSAGE_TOO_LARGE", `a message is at most ${MAX_HANDOFF_MESSAGE} bytes`);
  return length;
}

/** A frame's JSON, checked to be a message (MESSAGE_INVALID otherwise). */
export function parseHandoffMessage(json: Uint8Array): HandoffMessage {
  let message: unknown;
  try {
    message = JSON.parse(new TextDecoder().decode(json));
  } catch {
    throw new HandoffRefusal("MESSAGE_INVALID", "a message is JSON");
  }
  if (
    typeof message !== "object" ||
    message === null ||
    typeof (message as HandoffMessage).type !== "string"
  ) {
    throw new HandoffRefusal("MESSAGE_INVALID", "a message is a JSON object with a string 'type'");
  }
  return message as HandoffMessage;
}

/** Collects a stream's bytes and hands out its whole frames, in order. */
export class FrameReader {
  private pending = new Uint8Array(0);

  push(bytes: Uint8Array): void {
    const joined = new Uint8Array(this.pending.length + bytes.length);
    joined.set(this.pending);
    joined.set(bytes, this.pending.length);
    this.pending = joined;
  }

  /** The next whole message, or undefined until more bytes arrive. */
  next(): HandoffMessage | undefined {
    if (this.pending.length < 4) return undefined;
    const length = frameLength(this.pending);
    if (this.pending.length < 4 + length) return undefined;
    const message = parseHandoffMessage(this.pending.subarray(4, 4 + length));
    this.pending = this.pending.slice(4 + length);
    return message;
  }
}

/** The message's `version`, which must be `version` (VERSION_UNSUPPORTED otherwise). */
export function requireVersion(message: HandoffMessage, version: number): void {
  if (message.version !== version)
    throw new HandoffRefusal("VERSION_UNSUPPORTED", `protocol version ${version} only`);
}

const RESOURCE_ID = /^[a-z][a-z0-9-]{0,62}$/;

/** The message's `field`, a resource id as in vplane's resource names (`reason` otherwise). */
export function requireResourceId(message: HandoffMessage, field: string, reason: string): string {
  const value = message[field];
  if (typeof value !== "string" || !RESOURCE_ID.test(value))
    throw new HandoffRefusal(
      reason,
      `${field} is an id: 1-63 lowercase letters, digits and '-', starting with a letter`,
    );
  return value;
}
