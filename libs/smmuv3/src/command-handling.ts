import type { SmmuFeatures } from "./features.js";
import { validateGuestCommand } from "./guest-command.js";
import {
  CommandOpcode,
  cfgiSid,
  cfgiSsid,
  opcodeOf,
  tlbiAsid,
  tlbiRange,
  type RawCommand,
} from "./invalidation-command.js";
import type { Iotlb } from "./iotlb.js";
import { planSeedInvalidation, type CacheInvalidateInfo } from "./seed-cache-invalidate.js";
import type { DeviceRecord } from "./smmu-device.js";
import { Errno, SmmuError, invalidArgument } from "./smmu-error.js";

/** The result of a batch of raw commands (iommufd HWPT_INVALIDATE: entry_num handled, digest §2.4). */
export interface InvalidationOutcome {
  handled: number;
  error?: SmmuError;
}

/** What commands act on besides the IOTLB: the devices' cached stream and context-descriptor configuration. */
export interface ConfigCache {
  devices(): Iterable<DeviceRecord>;
  deviceByVirtualSid(virtualStreamId: number): DeviceRecord | undefined;
  /** CFGI_CD_ALL / STE change: the stream's whole cached configuration goes. */
  forgetStream(device: DeviceRecord): void;
  /** CFGI_CD: one cached context descriptor goes. */
  forgetContextDescriptor(device: DeviceRecord, ssid: number): void;
}

/**
 * The SMMU's command handling in both forms the guest's invalidations arrive in (QEMU's
 * smmuv3_cmdq_consume, for the commands a guest may issue): the seed CACHE_INVALIDATE call and
 * iommufd's raw commands, applied to the IOTLB and the configuration cache of one VMID.
 */
export class CommandHandling {
  /** 0xffff with 16-bit ASIDs, else 0xff. */
  private readonly asidMask: number;

  constructor(
    private readonly iotlb: Iotlb,
    private readonly vmid: number,
    /** What the guest was told (IDRs): which command fields it may set. */
    private readonly features: SmmuFeatures,
    private readonly configs: ConfigCache,
  ) {
    this.asidMask = features.asid16 ? 0xffff : 0xff;
  }

  /** Seed CACHE_INVALIDATE (digest §1.3): validated as the kernel does, then applied. */
  invalidate(info: CacheInvalidateInfo): void {
    const plan = planSeedInvalidation(info);
    switch (plan.kind) {
      case "asid":
        this.iotlb.invalidateAsid(plan.asid, this.vmid);
        break;
      case "range": {
        const { region, low } = splitAddress(plan.address);
        if (plan.length > 0) this.iotlb.invalidateRange(plan.asid, this.vmid, region, low, plan.length);
        break;
      }
      case "vmid-stage1":
        this.iotlb.invalidateVmidStage1(this.vmid);
        break;
      case "cd":
        for (const d of this.configs.devices()) this.configs.forgetContextDescriptor(d, plan.ssid);
        break;
    }
  }

  /**
   * iommufd HWPT_INVALIDATE on the vIOMMU (digest §2.4): each command rewritten and applied in
   * order; the first one refused stops the batch. `handled` counts the commands applied (the
   * ones before the bad one stay applied, as the selftest requires).
   */
  invalidateCommands(commands: readonly RawCommand[]): InvalidationOutcome {
    for (let i = 0; i < commands.length; i++) {
      try {
        this.applyCommand(commands[i]!);
      } catch (error) {
        if (error instanceof SmmuError) return { handled: i, error: error.atBatchIndex(i) };
        throw error;
      }
    }
    return { handled: commands.length };
  }

  /**
   * arm_vsmmu_validate_user_cmd (validateGuestCommand: the fields a guest may set, EIO
   * otherwise), arm_vsmmu_convert_user_cmd, then what the emulated SMMU does with the converted command:
   * TLBI_NSNH_ALL becomes NH_ALL of this VMID; NH_ALL / NH_ASID / NH_VA / NH_VAA get the VMID
   * forced; ATC_INV / CFGI_CD / CFGI_CD_ALL get the vSID translated (unknown vSID → EIO); any
   * other opcode → EIO. ATC_INV has no ATC to act on here.
   */
  private applyCommand(cmd: RawCommand): void {
    validateGuestCommand(cmd, this.features);
    const opcode = opcodeOf(cmd);
    switch (opcode) {
      case CommandOpcode.TLBI_NSNH_ALL:
      case CommandOpcode.TLBI_NH_ALL:
        this.iotlb.invalidateVmidStage1(this.vmid);
        return;
      case CommandOpcode.TLBI_NH_ASID:
        this.iotlb.invalidateAsid(tlbiAsid(cmd) & this.asidMask, this.vmid);
        return;
      case CommandOpcode.TLBI_NH_VA:
      case CommandOpcode.TLBI_NH_VAA: {
        const range = tlbiRange(cmd);
        const { region, low } = splitAddress(range.address);
        const asid = opcode === CommandOpcode.TLBI_NH_VA ? tlbiAsid(cmd) & this.asidMask : undefined;
        this.iotlb.invalidateRange(asid, this.vmid, region, low, range.length);
        return;
      }
      case CommandOpcode.ATC_INV:
      case CommandOpcode.CFGI_CD:
      case CommandOpcode.CFGI_CD_ALL: {
        const vsid = cfgiSid(cmd);
        const dev = this.configs.deviceByVirtualSid(vsid);
        if (!dev)
          throw invalidArgument(
            "UNKNOWN_VIRTUAL_SID",
            `no vdevice has virtual StreamID ${vsid}`,
            "sid",
            Errno.EIO,
          );
        if (opcode === CommandOpcode.CFGI_CD) this.configs.forgetContextDescriptor(dev, cfgiSsid(cmd));
        else if (opcode === CommandOpcode.CFGI_CD_ALL) this.configs.forgetStream(dev);
        return;
      }
    }
  }
}

/** A 64-bit VA as (region, low 52 bits): bit 55 selects TTB1 whether or not the top byte is ignored. */
export function splitAddress(address: bigint): { region: number; low: number } {
  const v = BigInt.asUintN(64, address);
  return {
    region: Number((v >> 55n) & 1n),
    low: Number(v & 0xf_ffff_ffff_ffffn),
  };
}
