#!/usr/bin/env node
// The container's entry point: runs the service named by VPLANE_SERVICE (one image, four services).
import { SERVICE_VARIABLE, catalogEntry, type CatalogEntry } from "./service-catalog.js";

let entry: CatalogEntry;
try {
  entry = catalogEntry(process.env[SERVICE_VARIABLE] ?? "");
} catch (error) {
  process.stderr.write(`vplane: ${SERVICE_VARIABLE}: ${(error as Error).message}\n`);
  process.exit(2);
}
await import(new URL(`../../../${entry.main}`, import.meta.url).href);
