import { Errno, invalidArgument } from "./smmu-error.js";
import type { GuestStage1 } from "./stream-table-entry.js";

/** IOMMU_PASID_FORMAT_SMMUV3 and the structure versions (digest §1.2). */
export const PASID_FORMAT_SMMUV3 = 1;
export const PASID_TABLE_CFG_VERSION_1 = 1;
export const PASID_TABLE_SMMUV3_CFG_VERSION_1 = 1;

/** iommu_pasid_table_config.config (digest §1.2). */
export const PasidConfig = { TRANSLATE: 1, BYPASS: 2, ABORT: 3 } as const;

/** The seed's `struct iommu_pasid_table_config` (v5 = v8 layout, digest §1.2). */
export interface PasidTableConfig {
  version: number;
  format: number;
  /** GPA of the guest CD table (= STE.S1ContextPtr). */
  basePtr: bigint;
  pasidBits: number;
  config: number;
  smmuv3: { version: number; s1fmt: number; s1dss: number };
}

/**
 * arm_smmu_attach_pasid_table (seed v13-v15, digest §1.2): a bad format or version (of the
 * config or of its smmuv3 part) → EINVAL; ABORT → drop the S1 config and abort; BYPASS → drop it
 * and translate by stage 2 only; TRANSLATE → EINVAL if an S1 config is already installed ("S1 →
 * S1 transitions" are refused; the doc's "attach replaces" loses to the code) or pasid_bits != 0
 * (one CD only; s1fmt and s1dss ignored); anything else → EINVAL. Every refusal is EINVAL: the
 * function starts with ret = -EINVAL and each check jumps out.
 */
export function applyPasidTableConfig(current: GuestStage1 | undefined, cfg: PasidTableConfig): GuestStage1 {
  if (cfg.format !== PASID_FORMAT_SMMUV3) {
    throw invalidArgument(
      "BAD_PASID_FORMAT",
      `format must be ${PASID_FORMAT_SMMUV3} (SMMUv3), got ${cfg.format}`,
      "format",
    );
  }
  if (cfg.version !== PASID_TABLE_CFG_VERSION_1) {
    throw invalidArgument("BAD_VERSION", `version must be 1, got ${cfg.version}`, "version");
  }
  if (cfg.smmuv3.version !== PASID_TABLE_SMMUV3_CFG_VERSION_1) {
    throw invalidArgument(
      "BAD_VERSION",
      `smmuv3.version must be 1, got ${cfg.smmuv3.version}`,
      "smmuv3.version",
    );
  }
  switch (cfg.config) {
    case PasidConfig.ABORT:
      return { kind: "abort" };
    case PasidConfig.BYPASS:
      return { kind: "bypass" };
    case PasidConfig.TRANSLATE: {
      if (current?.kind === "translate") {
        throw invalidArgument(
          "STAGE1_ALREADY_SET",
          "a stage-1 config is already attached (S1 to S1 is refused)",
          "config",
          Errno.EINVAL,
        );
      }
      if (cfg.pasidBits !== 0) {
        throw invalidArgument(
          "PASID_BITS_UNSUPPORTED",
          `pasid_bits must be 0 (one CD only), got ${cfg.pasidBits}`,
          "pasidBits",
        );
      }
      const ptr = BigInt.asUintN(64, cfg.basePtr);
      // The pointer lands in STE.S1ContextPtr[51:6]: the bits outside are dropped.
      const contextPtr = Number(ptr & ((1n << 52n) - 64n));
      return { kind: "translate", contextPtr, s1fmt: 0, s1cdmax: 0, s1dss: 0, s1stalld: false, ats: false };
    }
    default:
      throw invalidArgument(
        "BAD_PASID_CONFIG",
        `config must be 1 (translate), 2 (bypass) or 3 (abort), got ${cfg.config}`,
        "config",
      );
  }
}
