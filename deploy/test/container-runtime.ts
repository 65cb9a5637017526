// Whether the container tier can run here: it needs a Docker daemon. Without one the tier is
// skipped loudly, except under CI=true, where a missing daemon is a failure (issue 2, item 6).
import { spawnSync } from "node:child_process";
import { getContainerRuntimeClient } from "testcontainers";

process.env.TESTCONTAINERS_RYUK_DISABLED ??= "true"; // no reaper image without a registry

/** undefined when Docker answers; otherwise why the tier cannot run. */
export async function dockerUnavailableReason(): Promise<string | undefined> {
  try {
    await getContainerRuntimeClient();
    return undefined;
  } catch (error) {
    return (error as Error).message.split("\n")[0];
  }
}

export function announceSkip(reason: string): void {
  const line = "=".repeat(78);
  console.error(
    `${line}\nCONTAINER TESTS SKIPPED: no Docker daemon (${reason}).\n` +
      `Start dockerd (or run .ci/run) to run them; under CI=true this is a failure.\n${line}`,
  );
}

/**
 * The image the Dockerfile builds FROM: VPLANE_BASE_IMAGE when set, else the local base image
 * made by deploy/make-base-image.sh (made now if this daemon does not have it yet).
 */
export function baseImage(repoRoot: string): string {
  const configured = process.env.VPLANE_BASE_IMAGE;
  if (configured) return configured;
  const local = "vplane-base:local";
  if (spawnSync("docker", ["image", "inspect", local], { stdio: "ignore" }).status !== 0) {
    const made = spawnSync("sh", [`${repoRoot}/deploy/make-base-image.sh`, local], { stdio: "inherit" });
    if (made.status !== 0) throw new Error(`deploy/make-base-image.sh failed (exit ${made.status})`);
  }
  return local;
}
