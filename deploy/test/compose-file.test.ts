// docker-compose.yml, checked offline (compose.test.ts brings it up where Docker runs): every
// variable a compose service sets is read by the service it runs, with a value it accepts, and
// each host service serves its metrics on a port published on loopback.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { serviceCatalog } from "../src/service-catalog.js";
import { kubernetesRoot, type Resource } from "./kubernetes/kustomize-build.js";
import { environmentProblems, metricsPortOf, type Container } from "./kubernetes/service-environment.js";

interface ComposeService {
  environment?: Record<string, string>;
  ports?: string[];
}

/** `${NAME:-default}` as compose reads it with NAME unset: the default. */
const interpolated = (text: string) => text.replace(/\$\{[A-Z0-9_]+:-([^}]*)\}/g, "$1");

const compose = parse(readFileSync(join(kubernetesRoot, "../../docker-compose.yml"), "utf8"), {
  merge: true,
}) as {
  services: Record<string, ComposeService>;
};

/** A compose service as the one container of a workload, which the manifest checks read. */
function asWorkload(name: string, service: ComposeService): Resource {
  const container: Container = {
    name,
    env: Object.entries(service.environment ?? {}).map(([variable, value]) => ({
      name: variable,
      value: interpolated(String(value)),
    })),
  };
  return {
    apiVersion: "compose",
    kind: "ComposeService",
    metadata: { name },
    spec: { template: { spec: { containers: [container] } } },
  };
}

const workloads = Object.entries(compose.services).map(([name, service]) => asWorkload(name, service));

describe("docker-compose.yml (offline)", () => {
  it("runs every catalogued service, each container setting only variables its service reads", () => {
    assert.deepEqual(Object.keys(compose.services).sort(), serviceCatalog.map((e) => e.name).sort());
    assert.deepEqual(workloads.flatMap(environmentProblems), []);
  });

  it("each host service serves /metrics on a port published on loopback", () => {
    for (const name of ["interrupt-controller", "iommu", "migration"]) {
      const container = (
        asWorkload(name, compose.services[name]!).spec as {
          template: { spec: { containers: Container[] } };
        }
      ).template.spec.containers[0]!;
      const port = metricsPortOf(container);
      assert.ok(port, `${name} sets its metrics address`);
      const published = (compose.services[name]!.ports ?? []).map(interpolated);
      assert.ok(published.includes(`127.0.0.1:${port}:${port}`), `${name}: ${published.join(", ")}`);
    }
  });

  it("the check can fail: a misspelt metrics variable is reported as unread", () => {
    const iommu = structuredClone(compose.services["iommu"]!);
    iommu.environment!["VPLANE_IOMMU_METRIC_ADDR"] = iommu.environment!["VPLANE_IOMMU_METRICS_ADDR"]!;
    delete iommu.environment!["VPLANE_IOMMU_METRICS_ADDR"];
    assert.deepEqual(environmentProblems(asWorkload("iommu", iommu)), [
      "ComposeService/iommu container iommu: sets VPLANE_IOMMU_METRIC_ADDR, which iommu does not read",
    ]);
  });
});
