/**
 * The Event State Buffer: two bits (P, Q) per source or END that decide whether a trigger is
 * forwarded (xive.md §3). Pure functions on numbers so the hot path allocates nothing.
 */

/** PQ values (xive.md §3): 00 ready, 01 off (the reset value), 10 pending, 11 queued. */
export const PQ = { RESET: 0b00, OFF: 0b01, PENDING: 0b10, QUEUED: 0b11 } as const;
export const PQ_P = 0b10;
export const PQ_Q = 0b01;

/** Result encoding of esbTrigger/esbEoi: bits 1:0 the new PQ, bit 2 set when the event is forwarded. */
export const ESB_FORWARD = 0b100;

// Trigger: 00→10 (forward), 01→01, 10→11, 11→11 (xive.md §3 table).
const TRIGGER = new Uint8Array([PQ.PENDING | ESB_FORWARD, PQ.OFF, PQ.QUEUED, PQ.QUEUED]);
// EOI: 00→00, 01→01, 10→00, 11→10 (forward: re-notify) (xive.md §3 table).
const EOI = new Uint8Array([PQ.RESET, PQ.OFF, PQ.RESET, PQ.PENDING | ESB_FORWARD]);

/** ESB trigger on `pq`: the new PQ in bits 1:0, ESB_FORWARD when the event goes on to routing. */
export function esbTrigger(pq: number): number {
  return TRIGGER[pq & 3]!;
}

/** ESB EOI on `pq`: the new PQ in bits 1:0, ESB_FORWARD when Q was set (re-notify). */
export function esbEoi(pq: number): number {
  return EOI[pq & 3]!;
}

/** Management-page load offsets (xive.md §3). */
export const ESB_LOAD = {
  EOI: 0x000,
  GET: 0x800,
  SET_PQ_00: 0xc00,
  SET_PQ_01: 0xd00,
  SET_PQ_10: 0xe00,
  SET_PQ_11: 0xf00,
} as const;

/** Management-page store offsets (xive.md §3). */
export const ESB_STORE = { TRIGGER: 0x000, EOI: 0x400, INJECT: 0x800, SET_PQ: 0xc00 } as const;

/** What a management-page load at `offset & 0xFFF` does (xive.md §3 load table). */
export type EsbLoadOp = "EOI" | "GET" | "SET_PQ";
export function decodeEsbLoad(offset: number): EsbLoadOp {
  const o = offset & 0xfff;
  if (o < 0x800) return "EOI"; // 0x000-0x7FF (QEMU also EOIs at 0x400, xive.md §10.8)
  if (o < 0xc00) return "GET";
  return "SET_PQ";
}

/** What a management-page store at `offset & 0xFFF` does (xive.md §3 store rules). */
export type EsbStoreOp = "TRIGGER" | "STORE_EOI" | "INJECT" | "SET_PQ";
export function decodeEsbStore(offset: number): EsbStoreOp {
  const o = offset & 0xfff;
  if (o < 0x400) return "TRIGGER";
  if (o < 0x800) return "STORE_EOI";
  if (o < 0xc00) return "INJECT";
  return "SET_PQ";
}

/** The PQ value a SET_PQ_xx offset selects: bits 9:8 of the offset. */
export function setPqValueOf(offset: number): number {
  return (offset >>> 8) & 3;
}

/** Renders PQ as QEMU's `info pic` does: 'P' or '-', then 'Q' or '-'. */
export function formatPq(pq: number): string {
  return `${pq & PQ_P ? "P" : "-"}${pq & PQ_Q ? "Q" : "-"}`;
}
