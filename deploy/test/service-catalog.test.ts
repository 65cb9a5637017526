import assert from "node:assert/strict";
import { test } from "node:test";
import { gatewayOptionsSpec } from "@vplane/gateway";
import { interruptControllerDescription } from "@vplane/interrupt-controller";
import { iommuDescription } from "@vplane/iommu";
import { migrationDescription } from "@vplane/migration";
import { catalogEntry, serviceCatalog } from "../src/service-catalog.js";

test("the catalog's address variables and default ports are the ones each service reads", () => {
  for (const description of [interruptControllerDescription, iommuDescription, migrationDescription]) {
    const entry = catalogEntry(description.name);
    assert.equal(entry.kind, "grpc");
    assert.equal(entry.addressVariable, `VPLANE_${description.envPrefix}_ADDR`);
    assert.equal(entry.defaultAddress, `127.0.0.1:${description.defaultPort}`);
  }
  const gateway = catalogEntry("gateway");
  assert.equal(gateway.addressVariable, gatewayOptionsSpec.address.env);
  assert.equal(gateway.defaultAddress, gatewayOptionsSpec.address.default);
  assert.equal(serviceCatalog.length, 4);
});

test("an unknown service name is refused with the list of known names", () => {
  assert.throws(() => catalogEntry("xics"), /unknown service "xics"; known: interrupt-controller, iommu/);
});
