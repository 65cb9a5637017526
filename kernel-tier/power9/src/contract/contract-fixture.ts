import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { ContractObservation } from "./xive-contract.js";

/** The guest's answers, recorded from a POWER9 tier run (VPLANE_RECORD_FIXTURES=1). */
export interface ContractFixture {
  recordedWith: Record<string, string>;
  runs: Record<string, ContractObservation[]>;
}

export const FIXTURE_PATH = fileURLToPath(new URL("../../../fixtures/xive-contract.json", import.meta.url));

export function readContractFixture(): ContractFixture {
  return JSON.parse(readFileSync(FIXTURE_PATH, "utf8")) as ContractFixture;
}

export function writeContractFixture(fixture: ContractFixture): void {
  writeFileSync(FIXTURE_PATH, `${JSON.stringify(fixture, null, 1)}\n`);
}
