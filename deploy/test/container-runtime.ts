// Whether the container tier can run here: it needs a Docker daemon. Without one the tier is
// skipped loudly, except under CI=true, where a missing daemon is a failure (issue 2, item 6).
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { GenericContainer, getContainerRuntimeClient } from "testcontainers";

process.env.TESTCONTAINERS_RYUK_DISABLED ??= "true"; // no reaper image without a registry

/**
 * Decides the container tier's fate once per test file: `skip` (announced loudly) when Docker or
 * a named command is missing outside CI; under CI=true, `missing` says what to fail on instead.
 */
export async function containerTier(commands: string[] = []): Promise<{ skip: boolean; missing?: string }> {
  let missing: string | undefined;
  try {
    await getContainerRuntimeClient();
  } catch (error) {
    missing = `no Docker daemon (${(error as Error).message.split("\n")[0]})`;
  }
  for (const command of commands) {
    if (!missing && spawnSync(command, ["version"], { stdio: "ignore" }).error) missing = `no ${command}`;
  }
  if (!missing) return { skip: false };
  if (process.env.CI === "true") return { skip: false, missing };
  const line = "=".repeat(78);
  console.error(
    `${line}\nCONTAINER TESTS SKIPPED: ${missing}.\n` +
      `Start dockerd (or run .ci/run) to run them; under CI=true this is a failure.\n${line}`,
  );
  return { skip: true };
}

export const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));

/** Builds deploy/Dockerfile from the host's built tree as `tag`; logs how long it took. */
export async function buildVplaneImage(tag: string): Promise<GenericContainer> {
  const started = Date.now();
  const image = await GenericContainer.fromDockerfile(repoRoot, "deploy/Dockerfile")
    .withBuildArgs({ BASE_IMAGE: baseImage() })
    .build(tag, { deleteOnExit: false });
  console.error(`container tier: ${tag} built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return image;
}

/**
 * The image the Dockerfile builds FROM: VPLANE_BASE_IMAGE when set, else the local base image
 * made by deploy/make-base-image.sh (made now if this daemon does not have it yet).
 */
function baseImage(): string {
  const configured = process.env.VPLANE_BASE_IMAGE;
  if (configured) return configured;
  const local = "vplane-base:local";
  if (spawnSync("docker", ["image", "inspect", local], { stdio: "ignore" }).status !== 0) {
    const made = spawnSync("sh", [`${repoRoot}/deploy/make-base-image.sh`, local], { stdio: "inherit" });
    if (made.status !== 0) throw new Error(`deploy/make-base-image.sh failed (exit ${made.status})`);
  }
  return local;
}
