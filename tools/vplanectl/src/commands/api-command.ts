import type { Argv } from "yargs";
import { idempotencyHeader, type ContextFactory } from "../command-context.js";

export function apiCommand(yargs: Argv, context: ContextFactory): Argv {
  return yargs.command(
    "api <method> <path>",
    "Any route, raw: the answer as JSON (e.g. api get /v1/vms)",
    (y) =>
      y
        .positional("method", {
          choices: [
            "get",
            "post",
            "put",
            "patch",
            "delete",
            "GET",
            "POST",
            "PUT",
            "PATCH",
            "DELETE",
          ] as const,
          demandOption: true,
        })
        .positional("path", { type: "string", demandOption: true })
        .option("data", { alias: "d", type: "string", describe: "the JSON body" })
        .option("idempotency-key", { type: "string" }),
    async (argv) => {
      const ctx = context(argv);
      const answer = await ctx.api.raw(
        argv.method,
        argv.path,
        argv.data !== undefined ? (JSON.parse(argv.data) as unknown) : undefined,
        idempotencyHeader(argv["idempotency-key"]),
      );
      ctx.io.stdout.write(`${JSON.stringify(answer ?? null, null, 2)}\n`);
    },
  );
}
