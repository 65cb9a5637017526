#!/usr/bin/env node
// The image's HEALTHCHECK: exit 0 when the service named by VPLANE_SERVICE reports ready.
import { dialAddress, isHealthy } from "./health-probe.js";
import { SERVICE_VARIABLE, catalogEntry } from "./service-catalog.js";

const entry = catalogEntry(process.env[SERVICE_VARIABLE] ?? "");
const address = dialAddress(process.env[entry.addressVariable] || entry.defaultAddress);
process.exit((await isHealthy(entry.kind, address, 2000)) ? 0 : 1);
