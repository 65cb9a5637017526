import type { Argv } from "yargs";
import { asInteger } from "../cli-arguments.js";
import { idempotencyHeader, type ContextFactory } from "../command-context.js";
import { finishOperation, operationName, OPERATION_COLUMNS, type Operation } from "../operation-watch.js";

export function operationCommands(yargs: Argv, context: ContextFactory): Argv {
  return yargs
    .command("operations", "Long-running operations: list, get, watch, cancel", (operations) =>
      operations
        .command("list", "List operations", {}, async (argv) => {
          const ctx = context(argv);
          const { operations: all } = await ctx.api.request<{ operations: Operation[] }>(
            "GET",
            "/v1/operations?pageSize=1000",
          );
          ctx.print({ operations: all }, all, OPERATION_COLUMNS);
        })
        .command(
          "get <operation>",
          "Show one operation",
          (y) => y.positional("operation", { type: "string", demandOption: true }),
          async (argv) => {
            const ctx = context(argv);
            const operation = await ctx.api.request<Operation>("GET", `/v1/${operationName(argv.operation)}`);
            ctx.print(operation, [operation], OPERATION_COLUMNS);
          },
        )
        .command(
          "watch <operation>",
          "Follow an operation to its end (progress bar on stderr)",
          (y) => y.positional("operation", { type: "string", demandOption: true }),
          async (argv) => {
            const ctx = context(argv);
            const operation = await ctx.api.request<Operation>("GET", `/v1/${operationName(argv.operation)}`);
            await finishOperation(ctx, operation, true);
          },
        )
        .command(
          "cancel <operation>",
          "Ask a running operation to stop (the final state says whether it did)",
          (y) => y.positional("operation", { type: "string", demandOption: true }),
          async (argv) => {
            const ctx = context(argv);
            const operation = await ctx.api.request<Operation>(
              "POST",
              `/v1/${operationName(argv.operation)}/cancel`,
            );
            ctx.print(operation, [operation], OPERATION_COLUMNS);
          },
        )
        .demandCommand(1, "operations: say which: list, get, watch, cancel"),
    )
    .command(
      "migrate <vm>",
      "Live-migrate a VM to another host (watched with a progress bar unless --no-wait)",
      (y) =>
        y
          .positional("vm", { type: "string", demandOption: true })
          .option("to", { type: "string", demandOption: true, describe: "destination host" })
          .option("downtime-limit-ms", { type: "string", coerce: asInteger("--downtime-limit-ms") })
          .option("vmm-moves-ram", { type: "boolean", default: false })
          .option("wait", {
            type: "boolean",
            default: true,
            describe: "follow it (--no-wait: print the operation)",
          })
          .option("idempotency-key", { type: "string" }),
      async (argv) => {
        const ctx = context(argv);
        const limit = argv["downtime-limit-ms"];
        const operation = await ctx.api.request<Operation>(
          "POST",
          `/v1/vms/${argv.vm}:migrate`,
          {
            destinationHost: argv.to,
            ...(limit !== undefined ? { downtimeLimitMs: limit } : {}),
            ...(argv["vmm-moves-ram"] ? { vmmMovesRam: true } : {}),
          },
          idempotencyHeader(argv["idempotency-key"]),
        );
        await finishOperation(ctx, operation, argv.wait);
      },
    );
}
