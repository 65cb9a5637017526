import { maskOf } from "./bits.js";
import type { SmmuFeatures } from "./features.js";
import { CommandOpcode, opcodeOf, type RawCommand } from "./invalidation-command.js";
import { Errno, invalidArgument } from "./smmu-error.js";

/** Command fields (Linux arm-smmu-v3.h CMDQ_*; SCALE is dw0[25:20], bit 25 only with DS). */
const OP = maskOf(7, 0);
const SSV = maskOf(11, 11);
const TLBI_NUM = maskOf(16, 12);
const TLBI_SCALE = maskOf(25, 20);
const TLBI_SCALE_DS_BIT = maskOf(25, 25);
const TLBI_VMID = maskOf(47, 32);
const TLBI_LEAF = maskOf(0, 0);
const TLBI_TTL = maskOf(9, 8);
const TLBI_TG = maskOf(11, 10);
const TLBI_VA = maskOf(63, 12);
const SSID = maskOf(31, 12);
const SID = maskOf(63, 32);
const ATC_GLOBAL = maskOf(9, 9);
const ATC_SIZE = maskOf(5, 0);
const ATC_ADDRESS = maskOf(63, 12);
const CFGI_LEAF = maskOf(0, 0);
/** ATC_INV Size above 52 (invalidate everything) may raise CERROR_ILL. */
const ATC_INV_SIZE_ALL = 52n;

function refused(reason: string, message: string, field: string) {
  return invalidArgument(reason, message, field, Errno.EIO);
}

/** arm_vsmmu_validate_range: range fields the spec calls Reserved. */
function checkRange(cmd: RawCommand): void {
  const range = (cmd[0] & (TLBI_NUM | TLBI_SCALE)) !== 0n;
  const ttl = (cmd[1] & TLBI_TTL) >> 8n;
  const tg = (cmd[1] & TLBI_TG) >> 10n;
  const bad = tg === 0n ? range || ttl !== 0n : (tg === 2n && ttl === 1n) || (!range && ttl === 0n);
  if (bad) {
    throw refused(
      "COMMAND_RANGE_RESERVED",
      `TLBI range fields NUM/SCALE/TG ${tg}/TTL ${ttl} are a reserved combination`,
      "cmd",
    );
  }
}

/**
 * The fields a guest may set in each command it may issue through IOMMU_HWPT_INVALIDATE (Linux
 * 7.3 arm_vsmmu_validate_user_cmd, which the digest does not list): anything else, a RES0 or
 * Secure bit included, is EIO before the command reaches the host's shared queue. TLBI_NSNH_ALL
 * has no field; NH_ALL the VMID (replaced); NH_ASID the ASID (within the advertised ASID size);
 * NH_VA / NH_VAA the VA and LEAF and, with range invalidation, NUM/SCALE/TG/TTL in a valid
 * combination; ATC_INV only on an SMMU with ATS, Size at most 52, SSV/SSID/Global only with
 * substreams; CFGI_CD the SID, LEAF and (with substreams) the SSID; CFGI_CD_ALL the SID. Every
 * other opcode is refused (COMMAND_NOT_ALLOWED).
 */
export function validateGuestCommand(cmd: RawCommand, f: SmmuFeatures): void {
  const opcode = opcodeOf(cmd);
  const asid = maskOf(48 + (f.asid16 ? 16 : 8) - 1, 48);
  const allowed: [bigint, bigint] = [OP, 0n];
  const ranges = () => {
    if (f.rangeInvalidation) {
      checkRange(cmd);
      // No DS (52-bit IPA with 4K/16K granules) in this model: SCALE bit 25 is RES0.
      allowed[0] |= TLBI_NUM | (TLBI_SCALE & ~TLBI_SCALE_DS_BIT);
      allowed[1] |= TLBI_TG | TLBI_TTL;
    }
    allowed[0] |= TLBI_VMID;
    allowed[1] |= TLBI_LEAF | TLBI_VA;
  };
  switch (opcode) {
    case CommandOpcode.TLBI_NSNH_ALL:
      break;
    case CommandOpcode.TLBI_NH_VA:
      allowed[0] |= asid;
      ranges();
      break;
    case CommandOpcode.TLBI_NH_VAA:
      ranges();
      break;
    case CommandOpcode.TLBI_NH_ASID:
      allowed[0] |= asid | TLBI_VMID;
      break;
    case CommandOpcode.TLBI_NH_ALL:
      allowed[0] |= TLBI_VMID;
      break;
    case CommandOpcode.ATC_INV:
      if (!f.ats) throw refused("COMMAND_NOT_ALLOWED", "ATC_INV on an SMMU without ATS", "opcode");
      if ((cmd[1] & ATC_SIZE) > ATC_INV_SIZE_ALL)
        throw refused("COMMAND_FIELD_NOT_ALLOWED", "ATC_INV Size above 52", "cmd");
      if (f.substreamIdBits > 0) allowed[0] |= SSV | SSID | ATC_GLOBAL;
      allowed[0] |= SID;
      allowed[1] |= ATC_SIZE | ATC_ADDRESS;
      break;
    case CommandOpcode.CFGI_CD:
      if (f.substreamIdBits > 0) allowed[0] |= SSID;
      allowed[0] |= SID;
      allowed[1] |= CFGI_LEAF;
      break;
    case CommandOpcode.CFGI_CD_ALL:
      allowed[0] |= SID;
      break;
    default:
      throw refused(
        "COMMAND_NOT_ALLOWED",
        `command 0x${opcode.toString(16)} cannot be issued by a guest`,
        "opcode",
      );
  }
  const extra0 = BigInt.asUintN(64, cmd[0]) & ~allowed[0];
  const extra1 = BigInt.asUintN(64, cmd[1]) & ~allowed[1];
  if (extra0 !== 0n || extra1 !== 0n) {
    throw refused(
      "COMMAND_FIELD_NOT_ALLOWED",
      `command 0x${opcode.toString(16)} sets bits a guest may not set: cmd[0] 0x${extra0.toString(16)}, cmd[1] 0x${extra1.toString(16)}`,
      "cmd",
    );
  }
}
