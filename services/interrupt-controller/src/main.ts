#!/usr/bin/env node
import { runService } from "@vplane/service-kit";
import { interruptControllerDescription } from "./interrupt-controller-service.js";

await runService(interruptControllerDescription);
