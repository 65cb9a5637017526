import { readFileSync } from "node:fs";
import type { Argv } from "yargs";
import type { components } from "@vplane/gateway-client";
import { parseByteSize } from "../byte-size.js";
import { asInteger, integer } from "../cli-arguments.js";
import { UsageError } from "../cli-config.js";
import { idempotencyHeader, type ContextFactory } from "../command-context.js";
import { finishOperation } from "../operation-watch.js";
import type { Column } from "../output.js";

type Vm = components["schemas"]["Vm"];

const VM_COLUMNS: Column<Vm>[] = [
  ["NAME", (v) => v.name],
  ["STATE", (v) => v.state],
  ["HOST", (v) => v.host],
  ["VCPUS", (v) => v.vcpus],
  ["MEMORY", (v) => `${Math.round(v.memoryBytes / 2 ** 20)}MiB`],
  ["MODE", (v) => v.interruptController.mode],
  ["BACKEND", (v) => v.resolved.interruptController?.backend ?? v.interruptController.backend],
  ["SMMUS", (v) => v.iommu.smmus.map((s) => s.name).join(",")],
];

/** "s0" or "s0=16:1,17:2" (physical:virtual StreamIDs). */
function parseSmmu(text: string) {
  const [name, devices] = text.split("=", 2);
  if (!name) throw new UsageError(`--smmu needs a name: NAME[=PHYS:VIRT,...], not '${text}'`);
  return {
    name,
    ...(devices
      ? {
          devices: devices.split(",").map((pair) => {
            const [physical, virtual] = pair.split(":");
            return {
              physicalSid: integer(physical, "--smmu physical StreamID"),
              virtualSid: integer(virtual, "--smmu virtual StreamID"),
            };
          }),
        }
      : {}),
  };
}

export function vmCommands(yargs: Argv, context: ContextFactory): Argv {
  return yargs.command("vms", "VMs: list, get, create, delete", (vms) =>
    vms
      .command("list", "List the VMs of your tenant", {}, async (argv) => {
        const ctx = context(argv);
        const all: Vm[] = [];
        let pageToken: string | undefined;
        do {
          const page = await ctx.api.call(
            ctx.api.gateway.GET("/v1/vms", {
              params: { query: { pageSize: 1000, ...(pageToken ? { pageToken } : {}) } },
            }),
          );
          all.push(...page.vms);
          pageToken = page.nextPageToken;
        } while (pageToken);
        ctx.print({ vms: all }, all, VM_COLUMNS);
      })
      .command(
        "get <vm>",
        "Show one VM",
        (y) => y.positional("vm", { type: "string", demandOption: true }),
        async (argv) => {
          const ctx = context(argv);
          const vm = await ctx.api.call(
            ctx.api.gateway.GET("/v1/vms/{vm}", { params: { path: { vm: argv.vm } } }),
          );
          ctx.print(vm, [vm], VM_COLUMNS);
        },
      )
      .command(
        "create",
        "Create a VM (a long-running operation)",
        (y) =>
          y
            .option("name", { type: "string", describe: "VM id" })
            .option("vcpus", { type: "string", coerce: asInteger("--vcpus") })
            .option("memory", { type: "string", describe: "guest RAM, e.g. 512MiB, 4GiB" })
            .option("mode", { choices: ["xive", "xics", "dual"] as const })
            .option("backend", { choices: ["auto", "emulated", "native"] as const })
            .option("nr-servers", { type: "string", coerce: asInteger("--nr-servers") })
            .option("smmu", { type: "string", array: true, describe: "NAME[=PHYS:VIRT,...], repeatable" })
            .option("iommu-backend", { choices: ["auto", "emulated", "native"] as const })
            .option("host", { type: "string", describe: "place it on this host" })
            .option("file", { alias: "f", type: "string", describe: "the whole spec as JSON" })
            .option("idempotency-key", { type: "string" })
            .option("wait", { type: "boolean", default: false, describe: "follow the operation" })
            .check((argv) => {
              if (argv.file) return true;
              for (const flag of ["name", "vcpus", "memory", "mode"] as const)
                if (argv[flag] === undefined) throw new UsageError(`--${flag} is required (or --file)`);
              return true;
            }),
        async (argv) => {
          const ctx = context(argv);
          const smmus = (argv.smmu ?? []).map(parseSmmu);
          const spec = argv.file
            ? (JSON.parse(readFileSync(argv.file, "utf8")) as unknown)
            : {
                name: argv.name,
                vcpus: argv.vcpus,
                memoryBytes: parseByteSize(argv.memory!),
                interruptController: {
                  mode: argv.mode,
                  ...(argv.backend ? { backend: argv.backend } : {}),
                  ...(argv["nr-servers"] !== undefined ? { nrServers: argv["nr-servers"] } : {}),
                },
                ...(smmus.length > 0
                  ? {
                      iommu: {
                        smmus,
                        ...(argv["iommu-backend"] ? { backend: argv["iommu-backend"] } : {}),
                      },
                    }
                  : {}),
                ...(argv.host ? { placement: { host: argv.host } } : {}),
              };
          const headers = idempotencyHeader(argv["idempotency-key"]);
          const operation = await ctx.api.call(
            ctx.api.gateway.POST("/v1/vms", {
              // --file is the user's JSON, checked by the gateway, not here.
              body: spec as components["schemas"]["VmSpec"],
              ...(headers ? { headers } : {}),
            }),
          );
          await finishOperation(ctx, operation, argv.wait);
        },
      )
      .command(
        "delete <vm>",
        "Delete a VM (a long-running operation)",
        (y) =>
          y
            .positional("vm", { type: "string", demandOption: true })
            .option("wait", { type: "boolean", default: false, describe: "follow the operation" }),
        async (argv) => {
          const ctx = context(argv);
          const operation = await ctx.api.call(
            ctx.api.gateway.DELETE("/v1/vms/{vm}", { params: { path: { vm: argv.vm } } }),
          );
          await finishOperation(ctx, operation, argv.wait);
        },
      )
      .demandCommand(1, "vms: say which: list, get, create, delete"),
  );
}
