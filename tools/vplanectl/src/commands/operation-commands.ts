import type { Argv } from "yargs";
import { asInteger } from "../cli-arguments.js";
import { idempotencyHeader, type ContextFactory } from "../command-context.js";
import { finishOperation, operationId, OPERATION_COLUMNS } from "../operation-watch.js";

export function operationCommands(yargs: Argv, context: ContextFactory): Argv {
  return yargs
    .command("operations", "Long-running operations: list, get, watch, cancel", (operations) =>
      operations
        .command("list", "List operations", {}, async (argv) => {
          const ctx = context(argv);
          const { operations: all } = await ctx.api.call(
            ctx.api.gateway.GET("/v1/operations", { params: { query: { pageSize: 1000 } } }),
          );
          ctx.print({ operations: all }, all, OPERATION_COLUMNS);
        })
        .command(
          "get <operation>",
          "Show one operation",
          (y) => y.positional("operation", { type: "string", demandOption: true }),
          async (argv) => {
            const ctx = context(argv);
            const operation = await ctx.api.call(
              ctx.api.gateway.GET("/v1/operations/{operation}", {
                params: { path: { operation: operationId(argv.operation) } },
              }),
            );
            ctx.print(operation, [operation], OPERATION_COLUMNS);
          },
        )
        .command(
          "watch <operation>",
          "Follow an operation to its end (progress bar on stderr)",
          (y) => y.positional("operation", { type: "string", demandOption: true }),
          async (argv) => {
            const ctx = context(argv);
            const operation = await ctx.api.call(
              ctx.api.gateway.GET("/v1/operations/{operation}", {
                params: { path: { operation: operationId(argv.operation) } },
              }),
            );
            await finishOperation(ctx, operation, true);
          },
        )
        .command(
          "cancel <operation>",
          "Ask a running operation to stop (the final state says whether it did)",
          (y) => y.positional("operation", { type: "string", demandOption: true }),
          async (argv) => {
            const ctx = context(argv);
            const operation = await ctx.api.call(
              ctx.api.gateway.POST("/v1/operations/{operation}/cancel", {
                params: { path: { operation: operationId(argv.operation) } },
              }),
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
        const headers = idempotencyHeader(argv["idempotency-key"]);
        const operation = await ctx.api.call(
          ctx.api.gateway.POST("/v1/vms/{vm}:migrate", {
            params: { path: { vm: argv.vm } },
            body: {
              destinationHost: argv.to,
              ...(limit !== undefined ? { downtimeLimitMs: limit } : {}),
              ...(argv["vmm-moves-ram"] ? { vmmMovesRam: true } : {}),
            },
            ...(headers ? { headers } : {}),
          }),
        );
        await finishOperation(ctx, operation, argv.wait);
      },
    );
}
