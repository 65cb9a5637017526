import { KNOWN_DIFFERENCES, type KnownDifference } from "./known-differences.js";
import type { ContractObservation } from "./xive-contract.js";

/** Every step where `actual` differs from `expected`, except the known differences. */
export function unexplainedDifferences(
  expected: readonly ContractObservation[],
  actual: readonly ContractObservation[],
  known: readonly KnownDifference[] = KNOWN_DIFFERENCES,
): string[] {
  const differences: string[] = [];
  const length = Math.max(expected.length, actual.length);
  for (let i = 0; i < length; i++) {
    const e = expected[i];
    const a = actual[i];
    if (e === undefined || a === undefined || e.step !== a.step) {
      differences.push(`step ${i}: expected "${e?.step}", got "${a?.step}"`);
      break;
    }
    const explained = known.some((k) => k.step === e.step);
    if (!explained && JSON.stringify(e) !== JSON.stringify(a)) {
      differences.push(
        `step ${i} "${e.step}" (${e.on}): expected ${JSON.stringify(e.value ?? e.error)}, got ${JSON.stringify(a.value ?? a.error)}`,
      );
    }
  }
  return differences;
}
