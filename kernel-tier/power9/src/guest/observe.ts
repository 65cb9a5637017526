import { KernelError } from "@vplane/host-kernel";
import { report } from "@vplane/kernel-tier-runner/guest";

/** What one step of a guest scenario showed: its value, or the kernel's errno. */
export type Observation =
  | { name: string; ok: true; value: unknown }
  | { name: string; ok: false; errno: number; errnoName: string; call: string }
  | { name: string; ok: false; error: string };

/** Runs one step and reports what it showed as an "observation" report. */
export function observe(name: string, step: () => unknown): Observation {
  let observation: Observation;
  try {
    observation = { name, ok: true, value: step() };
  } catch (error) {
    observation = failed(name, error);
  }
  report("observation", observation);
  return observation;
}

/** observe for a step that answers later (a gRPC call). */
export async function observeCall(name: string, step: () => Promise<unknown>): Promise<Observation> {
  let observation: Observation;
  try {
    observation = { name, ok: true, value: await step() };
  } catch (error) {
    observation = failed(name, error);
  }
  report("observation", observation);
  return observation;
}

function failed(name: string, error: unknown): Observation {
  return error instanceof KernelError
    ? { name, ok: false, errno: error.errno, errnoName: error.errnoName, call: error.call }
    : {
        name,
        ok: false,
        error:
          error instanceof Error
            ? `${error.name} ${(error as { reason?: string }).reason ?? ""}: ${error.message}`
            : String(error),
      };
}
