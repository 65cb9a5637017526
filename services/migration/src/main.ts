#!/usr/bin/env node
import { runService } from "@vplane/service-kit";
import { migrationDescription } from "./migration-service.js";

await runService(migrationDescription);
