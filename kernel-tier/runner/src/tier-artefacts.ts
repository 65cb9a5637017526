import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/** The tiers' cache folder, outside the clone: VPLANE_KERNEL_TIER_CACHE, default ~/.cache/vplane-kernel-tier. */
export function tierCache(): string {
  return process.env.VPLANE_KERNEL_TIER_CACHE ?? join(homedir(), ".cache", "vplane-kernel-tier");
}

export type ArtefactsLookup<T> = { found: true; artefacts: T } | { found: false; reason: string };

/**
 * The artefacts a tier's prepare script made and named in `$cache/<manifest>` (a JSON object of
 * paths), or why the tier cannot run here, with the command that prepares it.
 */
export function findArtefacts<T extends object>(
  manifest: string,
  prepare: string,
  cache = tierCache(),
): ArtefactsLookup<T> {
  const path = join(cache, manifest);
  if (!existsSync(path)) return { found: false, reason: `${path} does not exist: ${prepare}` };
  const artefacts = JSON.parse(readFileSync(path, "utf8")) as T;
  for (const [name, value] of Object.entries(artefacts)) {
    if (typeof value === "string" && value.startsWith("/") && !existsSync(value)) {
      return { found: false, reason: `${name} (${value}) is missing: ${prepare}` };
    }
  }
  return { found: true, artefacts };
}

/**
 * For `describe(..., { skip })`: false when the tier can run; locally a loud reason to skip;
 * under CI=true an Error (.ci/run prepares every tier, so a missing one is a failure).
 */
export function tierSkipReason(tier: string, lookup: ArtefactsLookup<object>): string | false {
  if (lookup.found) return false;
  const reason = `${tier} not prepared: ${lookup.reason}`;
  if (process.env.CI === "true") throw new Error(`${reason}; CI=true, so this is a failure`);
  const line = "=".repeat(78);
  process.stderr.write(`${line}\nKERNEL TIER SKIPPED: ${reason}\n${line}\n`);
  return reason;
}
