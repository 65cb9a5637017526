/**
 * PAPR hypercall return codes and opcodes used by the interrupt controller (xive.md §2;
 * XICS opcodes from the PAPR interrupt hcalls). Return codes are what the hypervisor puts in R3.
 */
export const HcallReturn = {
  H_SUCCESS: 0,
  H_HARDWARE: -1,
  H_FUNCTION: -2,
  H_PARAMETER: -4,
  H_P2: -55,
  H_P3: -56,
  H_P4: -57,
  H_P5: -58,
} as const;

export const HcallOpcode = {
  // XICS (legacy) presentation hcalls.
  H_EOI: 0x64,
  H_CPPR: 0x68,
  H_IPI: 0x6c,
  H_IPOLL: 0x70,
  H_XIRR: 0x74,
  H_XIRR_X: 0x2fc,
  // XIVE exploitation hcalls (xive.md §2), 0x3A8..0x3D0.
  H_INT_GET_SOURCE_INFO: 0x3a8,
  H_INT_SET_SOURCE_CONFIG: 0x3ac,
  H_INT_GET_SOURCE_CONFIG: 0x3b0,
  H_INT_GET_QUEUE_INFO: 0x3b4,
  H_INT_SET_QUEUE_CONFIG: 0x3b8,
  H_INT_GET_QUEUE_CONFIG: 0x3bc,
  H_INT_SET_OS_REPORTING_LINE: 0x3c0,
  H_INT_GET_OS_REPORTING_LINE: 0x3c4,
  H_INT_ESB: 0x3c8,
  H_INT_SYNC: 0x3cc,
  H_INT_RESET: 0x3d0,
} as const;

/** True for the H_INT_* opcodes, which answer H_FUNCTION until the guest selects XIVE at CAS. */
export function isXiveHcall(opcode: number): boolean {
  return (
    opcode >= HcallOpcode.H_INT_GET_SOURCE_INFO && opcode <= HcallOpcode.H_INT_RESET && (opcode & 3) === 0
  );
}

/** True for the XICS presentation hcalls. */
export function isXicsHcall(opcode: number): boolean {
  return (
    opcode === HcallOpcode.H_EOI ||
    opcode === HcallOpcode.H_CPPR ||
    opcode === HcallOpcode.H_IPI ||
    opcode === HcallOpcode.H_IPOLL ||
    opcode === HcallOpcode.H_XIRR ||
    opcode === HcallOpcode.H_XIRR_X
  );
}

/** The result of one hypercall: R3 (return code) and R4.. (outputs), as 64-bit register values. */
export interface HcallResult {
  returnCode: number;
  /** R4, R5, ... as unsigned 64-bit values; -1 is 0xffff_ffff_ffff_ffff. */
  outputs: bigint[];
}

/** -1 in a 64-bit register. */
export const REG_MINUS_ONE = 0xffff_ffff_ffff_ffffn;
