import { bitsOf, maskOf } from "./bits.js";
import { Errno, invalidArgument, type SmmuError } from "./smmu-error.js";

/** STE.Config values (digest §3.1): 0-3 abort, 4 bypass, 5 S1, 6 S2, 7 nested. */
export const SteConfig = { ABORT: 0, BYPASS: 4, S1_TRANSLATE: 5, S2_TRANSLATE: 6, NESTED: 7 } as const;

/** STE.S1DSS: what a transaction without a SubstreamID does when S1CDMax != 0. */
export const S1Dss = { TERMINATE: 0, BYPASS: 1, SSID0: 2 } as const;

/** STE.S1Fmt: linear, or two-level with 4 KiB (SSID[5:0]) or 64 KiB (SSID[9:0]) leaf tables. */
export const S1Fmt = { LINEAR: 0, TWO_LEVEL_4K: 1, TWO_LEVEL_64K: 2 } as const;

/**
 * iommufd's STE fields a guest may set (digest §2.1): word 0 V, Config, S1Fmt, S1ContextPtr,
 * S1CDMax; word 1 S1DSS, S1CIR, S1COR, S1CSH, S1STALLD, EATS.
 */
export const STE0_NESTING_ALLOWED: bigint =
  maskOf(0, 0) | maskOf(3, 1) | maskOf(5, 4) | maskOf(51, 6) | maskOf(63, 59);
export const STE1_NESTING_ALLOWED: bigint =
  maskOf(1, 0) | maskOf(3, 2) | maskOf(5, 4) | maskOf(7, 6) | maskOf(27, 27) | maskOf(29, 28);

/** How the guest configured a stream's stage 1 (either form): what translation starts from. */
export type GuestStage1 =
  | { kind: "abort" }
  | { kind: "bypass" }
  /** V = 0: the physical STE aborts; the model reports C_BAD_STE as the kernel intends (digest §2.1). */
  | { kind: "invalid" }
  | {
      kind: "translate";
      /** S1ContextPtr: IPA of the CD table (or of the only CD). */
      contextPtr: number;
      s1fmt: number;
      s1cdmax: number;
      s1dss: number;
      s1stalld: boolean;
      /** EATS = 1: ATS enabled (only for S1, digest §2.1). */
      ats: boolean;
    };

/** A guest STE accepted by the iommufd rules: the words as stored, and what they mean. */
export interface GuestSte {
  /** The two words after validation: zeroed when V = 0, EATS stripped (digest §2.1). */
  words: [bigint, bigint];
  stage1: GuestStage1;
}

function eio(reason: string, message: string, field: string): SmmuError {
  return invalidArgument(reason, message, field, Errno.EIO);
}

/**
 * arm_smmu_validate_vste (digest §2.1), in its order: V = 0 → accepted and zeroed; any bit outside
 * the allowed mask → EIO; Config not 0 (abort), 4 (bypass) or 5 (S1) → EIO; EATS not 0 or 1 → EIO.
 */
export function validateGuestSte(ste0: bigint, ste1: bigint): GuestSte {
  const w0 = BigInt.asUintN(64, ste0);
  const w1 = BigInt.asUintN(64, ste1);
  if ((w0 & 1n) === 0n) return { words: [0n, 0n], stage1: { kind: "invalid" } };
  if ((w0 & ~STE0_NESTING_ALLOWED) !== 0n) {
    throw eio(
      "STE_FIELD_NOT_ALLOWED",
      `ste[0] sets bits outside the nesting mask: 0x${(w0 & ~STE0_NESTING_ALLOWED).toString(16)}`,
      "ste[0]",
    );
  }
  if ((w1 & ~STE1_NESTING_ALLOWED) !== 0n) {
    throw eio(
      "STE_FIELD_NOT_ALLOWED",
      `ste[1] sets bits outside the nesting mask: 0x${(w1 & ~STE1_NESTING_ALLOWED).toString(16)}`,
      "ste[1]",
    );
  }
  const config = bitsOf(w0, 3, 1);
  if (config !== SteConfig.ABORT && config !== SteConfig.BYPASS && config !== SteConfig.S1_TRANSLATE) {
    throw eio(
      "STE_CONFIG_NOT_ALLOWED",
      `ste[0].Config ${config} is not abort (0), bypass (4) or S1 (5)`,
      "ste[0]",
    );
  }
  const eats = bitsOf(w1, 29, 28);
  if (eats !== 0 && eats !== 1) {
    throw eio("STE_EATS_NOT_ALLOWED", `ste[1].EATS ${eats} is neither abort (0) nor translate (1)`, "ste[1]");
  }
  const words: [bigint, bigint] = [w0, w1 & ~maskOf(29, 28)];
  if (config === SteConfig.ABORT) return { words, stage1: { kind: "abort" } };
  if (config === SteConfig.BYPASS) return { words, stage1: { kind: "bypass" } };
  return {
    words,
    stage1: {
      kind: "translate",
      contextPtr: bitsOf(w0, 51, 6) * 64,
      s1fmt: bitsOf(w0, 5, 4),
      s1cdmax: bitsOf(w0, 63, 59),
      s1dss: bitsOf(w1, 1, 0),
      s1stalld: bitsOf(w1, 27, 27) === 1,
      ats: eats === 1,
    },
  };
}
