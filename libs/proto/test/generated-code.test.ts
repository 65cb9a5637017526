import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { it } from "node:test";
import { FileDescriptorSet } from "../src/gen/google/protobuf/descriptor.js";
import { descriptorSetPath } from "../src/index.js";

const genDir = fileURLToPath(new URL("../src/gen/", import.meta.url));

it("exposes no `any` in the generated API surface (declarations)", () => {
  const offenders = readdirSync(genDir, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".d.ts"))
    .filter((f) =>
      /(:\s*any\b|<any>|\bany\[\])/.test(readFileSync(genDir + f, "utf8").replace(/\/\*[\s\S]*?\*\//g, "")),
    );
  assert.deepEqual(offenders, []);
});

it("maps 64-bit proto fields to bigint", () => {
  const backend = readFileSync(genDir + "vplane/common/v1/backend.d.ts", "utf8");
  assert.match(backend, /limits: \{\s*\[key: string\]: bigint;\s*\}/);
});

it("ships a descriptor set (with imports) naming every vplane service, for server reflection", () => {
  const set = FileDescriptorSet.decode(readFileSync(descriptorSetPath));
  const services = set.file.flatMap((f) => f.service.map((s) => `${f.package}.${s.name}`));
  for (const name of [
    "vplane.interrupt.v1.InterruptControllerService",
    "vplane.iommu.v1.IommuService",
    "vplane.migration.v1.MigrationService",
    "vplane.testing.v1.EchoService",
  ]) {
    assert.ok(services.includes(name), `${name} missing from ${services.join(", ")}`);
  }
  assert.ok(set.file.some((f) => f.name === "google/rpc/status.proto"));
});
