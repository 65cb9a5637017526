#!/usr/bin/env node
import { runService } from "@vplane/service-kit";
import { iommuDescription } from "./iommu-service.js";

await runService(iommuDescription);
