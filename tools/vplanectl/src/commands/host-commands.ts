import type { Argv } from "yargs";
import type { components } from "@vplane/gateway-client";
import { parseByteSize } from "../byte-size.js";
import { asInteger } from "../cli-arguments.js";
import { idempotencyHeader, type ContextFactory } from "../command-context.js";
import type { Column } from "../output.js";

type Host = components["schemas"]["Host"];

const HOST_COLUMNS: Column<Host>[] = [
  ["NAME", (h) => h.name],
  ["VMS", (h) => h.usage.vms],
  ["VCPUS", (h) => `${h.usage.vcpus}/${h.capacity.vcpus || "-"}`],
  ["SMMUS", (h) => `${h.usage.smmus ?? 0}/${h.capacity.smmus || "-"}`],
  [
    "INTERRUPT",
    (h) => h.services?.["interruptController"]?.health ?? h.addresses?.["interruptController"] ?? "-",
  ],
  ["IOMMU", (h) => h.services?.["iommu"]?.health ?? h.addresses?.["iommu"] ?? "-"],
  ["MIGRATION", (h) => h.services?.["migration"]?.health ?? h.addresses?.["migration"] ?? "-"],
];

export function hostCommands(yargs: Argv, context: ContextFactory): Argv {
  return yargs.command("hosts", "Hosts: list, get, register, remove", (hosts) =>
    hosts
      .command("list", "List the hosts and their services' health", {}, async (argv) => {
        const ctx = context(argv);
        const { hosts: all } = await ctx.api.call(ctx.api.gateway.GET("/v1/hosts"));
        ctx.print({ hosts: all }, all, HOST_COLUMNS);
      })
      .command(
        "get <host>",
        "Show one host",
        (y) => y.positional("host", { type: "string", demandOption: true }),
        async (argv) => {
          const ctx = context(argv);
          const host = await ctx.api.call(
            ctx.api.gateway.GET("/v1/hosts/{host}", { params: { path: { host: argv.host } } }),
          );
          ctx.print(host, [host], HOST_COLUMNS);
        },
      )
      .command(
        "register",
        "Register a host by its three services' addresses",
        (y) =>
          y
            .option("name", { type: "string", demandOption: true })
            .option("interrupt-addr", { type: "string", demandOption: true, describe: "host:port" })
            .option("iommu-addr", { type: "string", demandOption: true, describe: "host:port" })
            .option("migration-addr", { type: "string", demandOption: true, describe: "host:port" })
            .option("vcpus", { type: "string", coerce: asInteger("--vcpus"), describe: "capacity" })
            .option("memory", { type: "string", describe: "capacity, e.g. 64GiB" })
            .option("idempotency-key", { type: "string" }),
        async (argv) => {
          const ctx = context(argv);
          const headers = idempotencyHeader(argv["idempotency-key"]);
          const register = ctx.api.gateway.POST("/v1/hosts", {
            body: {
              name: argv.name,
              addresses: {
                interruptController: argv["interrupt-addr"],
                iommu: argv["iommu-addr"],
                migration: argv["migration-addr"],
              },
              ...(argv.vcpus !== undefined || argv.memory
                ? {
                    capacity: {
                      vcpus: argv.vcpus ?? 0,
                      memoryBytes: argv.memory ? parseByteSize(argv.memory) : 0,
                    },
                  }
                : {}),
            },
            ...(headers ? { headers } : {}),
          });
          const host = await ctx.api.call(register);
          ctx.print(host, [host], HOST_COLUMNS);
        },
      )
      .command(
        "remove <host>",
        "Remove a host without VMs",
        (y) => y.positional("host", { type: "string", demandOption: true }),
        async (argv) => {
          const { api } = context(argv);
          await api.call(api.gateway.DELETE("/v1/hosts/{host}", { params: { path: { host: argv.host } } }));
        },
      )
      .demandCommand(1, "hosts: say which: list, get, register, remove"),
  );
}
