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

/** The fixture file's text: JSON as the repository's prettier formats it (a re-recording diffs by content). */
export async function formatContractFixture(fixture: ContractFixture): Promise<string> {
  // Loaded only to record: prettier is a development tool.
  const prettier = await import("prettier");
  const options = await prettier.resolveConfig(FIXTURE_PATH);
  // Objects written expanded stay expanded (prettier keeps an object broken where its text is).
  return prettier.format(JSON.stringify(fixture, null, 2), { ...options, filepath: FIXTURE_PATH });
}

export async function writeContractFixture(fixture: ContractFixture): Promise<void> {
  writeFileSync(FIXTURE_PATH, await formatContractFixture(fixture));
}
