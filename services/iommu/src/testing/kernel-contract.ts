import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { SmmuFeatures } from "@vplane/smmuv3";
import { CONTRACT_SCENARIOS } from "./contract-scenarios.js";
import { emulatedRig } from "./emulated-rig.js";

/** The real kernel's answers to the contract suite, recorded in the Arm tier's guest. */
export interface ContractFixture {
  /** The guest kernel's /proc/version. */
  kernel: string;
  /** What IOMMU_GET_HW_INFO reported for QEMU's SMMUv3 (the emulated side runs with the same). */
  features: Partial<SmmuFeatures>;
  scenarios: Record<string, unknown>;
}

/**
 * Where a kernel answer and the model's may differ, and why (the kernel source that explains
 * it). `path` is the difference's location as compareWithEmulated prints it.
 */
export const KERNEL_DIFFERENCES: readonly { path: string; why: string }[] = [];

/** services/iommu/test/fixtures/kernel-contract.json, beside the package's tests. */
const FIXTURE = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "..",
  "..",
  "test",
  "fixtures",
  "kernel-contract.json",
);

export function writeContractFixture(fixture: ContractFixture): void {
  mkdirSync(dirname(FIXTURE), { recursive: true });
  writeFileSync(FIXTURE, `${JSON.stringify(fixture, null, 2)}\n`);
}

export function readContractFixture(): ContractFixture | undefined {
  return existsSync(FIXTURE) ? (JSON.parse(readFileSync(FIXTURE, "utf8")) as ContractFixture) : undefined;
}

/**
 * Runs every scenario on the emulated backend with `features` and lists where its answer is not
 * the kernel's (`scenario > key > …: kernel …, model …`), leaving out KERNEL_DIFFERENCES.
 */
export async function compareWithEmulated(
  features: Partial<SmmuFeatures>,
  kernel: Record<string, unknown>,
): Promise<string[]> {
  const out: string[] = [];
  for (const scenario of CONTRACT_SCENARIOS) {
    const rig = emulatedRig(features);
    let model: unknown;
    try {
      model = await scenario.run(rig);
    } catch (error) {
      model = { error: error instanceof Error ? error.message : String(error) };
    } finally {
      rig.close();
    }
    diff(scenario.name, kernel[scenario.name], JSON.parse(JSON.stringify(model)) as unknown, out);
  }
  const explained = new Set(KERNEL_DIFFERENCES.map((d) => d.path));
  return out.filter((d) => !explained.has(d.slice(0, d.indexOf(": kernel "))));
}

function diff(path: string, kernel: unknown, model: unknown, out: string[]): void {
  if (isRecord(kernel) && isRecord(model)) {
    for (const key of new Set([...Object.keys(kernel), ...Object.keys(model)])) {
      diff(`${path} > ${key}`, kernel[key], model[key], out);
    }
    return;
  }
  if (Array.isArray(kernel) && Array.isArray(model)) {
    for (let i = 0; i < Math.max(kernel.length, model.length); i++)
      diff(`${path} > [${i}]`, kernel[i], model[i], out);
    return;
  }
  if (JSON.stringify(kernel) !== JSON.stringify(model)) {
    out.push(`${path}: kernel ${JSON.stringify(kernel)}, model ${JSON.stringify(model)}`);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
