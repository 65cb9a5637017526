#!/usr/bin/env node
// The container's entry point: runs the service named by VPLANE_SERVICE (one image, four services).
import { catalogEntry, type CatalogEntry } from "./service-catalog.js";

let entry: CatalogEntry;
try {
  entry = catalogEntry(process.env.VPLANE_SERVICE ?? "");
} catch (error) {
  process.stderr.write(`vplane: VPLANE_SERVICE: ${(error as Error).message}\n`);
  process.exit(2);
}
await import(new URL(`../../../${entry.main}`, import.meta.url).href);
