import { isDeepStrictEqual } from "node:util";
import type { JsonValue } from "@vplane/store";
import type { Operation, OperationEvent, OperationStep } from "../schemas/operation-schema.js";

/** What of an operation record (OperationRecord) its stored form concerns. */
type WithEvents = Operation & { events: OperationEvent[] };

/**
 * How an operation record is laid out in the registry. Its progress events are most of a record
 * (a create's 10 events were half its 3 KB, each repeating the state, step and percent of the one
 * before it), and the whole record is written at each of the operation's writes and read by every
 * replica's recovery look, so they are stored compactly, under `ev` instead of `events`: each
 * event keeps only what differs from the event before it (the first: from ACCEPTED), its time as
 * ms after that one's. Everything else is stored as the API shows it (`done`, `metadata`, ...,
 * readable by any tool). A record stored with `events` (written before this form) reads as it was.
 */
interface StoredEvent {
  /** ms after the previous event's time (the first: after metadata.createTime); 0 left out. */
  t?: number;
  /** The time itself, when ms after the previous one do not give it back exactly. */
  T?: string;
  /** seq, when not the previous event's + 1. */
  n?: number;
  /** state, progressPercent, step: when not the previous event's. */
  a?: OperationEvent["state"];
  p?: number;
  s?: string;
  /**
   * The message: `m` as it is; `r`: the step's report, the message being `${step}: ${r}`; neither:
   * the step's line as metadata.steps ends with it (`${step}: ${state} (${detail})`).
   */
  m?: string;
  r?: string;
  /** The migration status, when not the previous event's (null: none from here on). */
  g?: OperationEvent["migration"] | null;
}

type Stored<T extends WithEvents> = Omit<T, "events"> & { ev: StoredEvent[] };

/** What an event is compared with when it is the first one kept. */
const ACCEPTED = { seq: 0, state: "RUNNING", progressPercent: 0, step: "queued" } as const;

/** A step's report as a step event's message says it, after `${step}: ` (see withStep). */
export const stepReport = (state: string, detail?: string) => `${state}${detail ? ` (${detail})` : ""}`;

const ms = (time: string) => Date.parse(time);

/** The record as the registry stores it. */
export function storedForm<T extends WithEvents>(record: T): JsonValue {
  const { events, ...rest } = record;
  const finalReports = new Map(record.metadata.steps.map((s) => [s.name, stepReport(s.state, s.detail)]));
  let previous: Pick<OperationEvent, "seq" | "state" | "progressPercent" | "step" | "migration"> = ACCEPTED;
  let previousTime = ms(record.metadata.createTime);
  const ev = events.map((event) => {
    const stored: StoredEvent = {};
    const time = ms(event.time);
    const after = time - previousTime;
    if (Number.isFinite(after) && new Date(previousTime + after).toISOString() === event.time) {
      if (after !== 0) stored.t = after;
    } else stored.T = event.time;
    if (event.seq !== previous.seq + 1) stored.n = event.seq;
    if (event.state !== previous.state) stored.a = event.state;
    if (event.progressPercent !== previous.progressPercent) stored.p = event.progressPercent;
    if (event.step !== previous.step) stored.s = event.step;
    const prefix = `${event.step}: `;
    if (!event.message.startsWith(prefix)) stored.m = event.message;
    else if (event.message.slice(prefix.length) !== finalReports.get(event.step))
      stored.r = event.message.slice(prefix.length);
    if (!isDeepStrictEqual(event.migration, previous.migration)) stored.g = event.migration ?? null;
    previous = event;
    previousTime = Number.isFinite(time) ? time : previousTime;
    return stored;
  });
  return { ...rest, ev } as unknown as JsonValue;
}

/** The record a registry value holds, in either form. */
export function recordOf<T extends WithEvents>(value: unknown): T {
  const stored = value as Stored<T> | T;
  if (!("ev" in stored)) return stored;
  const { ev, ...rest } = stored;
  const steps = new Map<string, OperationStep>(rest.metadata.steps.map((s) => [s.name, s]));
  let previous: Pick<OperationEvent, "seq" | "state" | "progressPercent" | "step" | "migration"> = ACCEPTED;
  let previousTime = ms(rest.metadata.createTime);
  const events = ev.map((stored): OperationEvent => {
    const time = stored.T ?? new Date(previousTime + (stored.t ?? 0)).toISOString();
    const step = stored.s ?? previous.step;
    const final = steps.get(step);
    const report = stored.r ?? (final ? stepReport(final.state, final.detail) : "");
    const migration = stored.g === undefined ? previous.migration : (stored.g ?? undefined);
    const event: OperationEvent = {
      seq: stored.n ?? previous.seq + 1,
      time,
      state: stored.a ?? previous.state,
      progressPercent: stored.p ?? previous.progressPercent,
      step,
      message: stored.m ?? `${step}: ${report}`,
      ...(migration ? { migration } : {}),
    };
    previous = event;
    previousTime = Number.isFinite(ms(time)) ? ms(time) : previousTime;
    return event;
  });
  return { ...rest, events } as unknown as T;
}
