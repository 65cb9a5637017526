// Test support others use: the SMMU contract suite (run by this package's tests on the emulated
// backend and by the Arm kernel tier on the native one) and the guest-table builder it needs.
export { CONTRACT_RAM_BYTES, type ContractRig } from "./contract-rig.js";
export {
  CD_IPA,
  CONTRACT_SCENARIOS,
  IOVA_A,
  IOVA_B,
  PAGE_A,
  PAGE_B,
  PAGE_C,
  TABLES_IPA,
  VSID,
  type ContractScenario,
  type Outcome,
} from "./contract-scenarios.js";
export { emulatedRig } from "./emulated-rig.js";
export { GuestTables, steWords } from "./guest-tables.js";
export {
  KERNEL_DIFFERENCES,
  compareWithEmulated,
  readContractFixture,
  writeContractFixture,
  type ContractFixture,
} from "./kernel-contract.js";
