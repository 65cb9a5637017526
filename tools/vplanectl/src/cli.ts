import { createRequire } from "node:module";
import yargs, { type Argv } from "yargs";
import { ApiError } from "./api-client.js";
import { OUTPUT_FORMATS, UsageError } from "./cli-config.js";
import { CommandContext, type CliIo } from "./command-context.js";
import { apiCommand } from "./commands/api-command.js";
import { eventCommands } from "./commands/event-commands.js";
import { hostCommands } from "./commands/host-commands.js";
import { interruptCommands } from "./commands/interrupt-commands.js";
import { operationCommands } from "./commands/operation-commands.js";
import { smmuCommands } from "./commands/smmu-commands.js";
import { vmCommands } from "./commands/vm-commands.js";

const { version } = createRequire(import.meta.url)("../../package.json") as { version: string };

const EPILOGUE = `Settings come from flags, else VPLANE_URL / VPLANE_TOKEN / VPLANE_OUTPUT, else the config file
(--config, VPLANE_CONFIG, or ~/.config/vplane/config.json: {"url": ..., "token": ..., "output": ...}).
Exit status: 0 ok, 1 the API answered an error (printed as CODE REASON: message), 2 bad usage.
Shell completion: vplanectl completion >> ~/.bashrc (from zsh: >> ~/.zshrc).`;

/**
 * The command line (yargs): global options, one command module per area, per-command help,
 * unknown commands and flags refused by each command (strict), --version and completion.
 */
export function buildParser(io: CliIo): Argv {
  const context = (flags: object) => new CommandContext(flags, io);
  let parser: Argv = yargs()
    .scriptName("vplanectl")
    .usage("vplanectl: the vplane gateway's REST API from a shell\n\nUsage: $0 <command> [options]")
    .option("url", { type: "string", global: true, describe: "gateway URL (VPLANE_URL)" })
    .option("token", { type: "string", global: true, describe: "bearer token (VPLANE_TOKEN)" })
    .option("output", {
      alias: "o",
      choices: OUTPUT_FORMATS,
      global: true,
      describe: "output format (VPLANE_OUTPUT)",
    })
    .option("config", { type: "string", global: true, describe: "config file (VPLANE_CONFIG)" });
  for (const add of [
    vmCommands,
    hostCommands,
    operationCommands,
    interruptCommands,
    smmuCommands,
    eventCommands,
    apiCommand,
  ])
    parser = add(parser, context);
  return parser
    .completion("completion", "Print the shell completion script (bash; zsh when run from zsh)")
    .demandCommand(1, "say a command")
    .recommendCommands()
    .strict()
    .version(version)
    .alias("help", "h")
    .help()
    .epilogue(EPILOGUE)
    .wrap(Math.min(110, process.stdout.columns || 100))
    .exitProcess(false)
    .fail((message, error) => {
      throw error ?? new UsageError(message);
    });
}

export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    await buildParser(io).parseAsync([...argv]);
    return 0;
  } catch (error) {
    if (error instanceof ApiError) {
      // Scalar details only: fieldViolations repeats what the message already says.
      const detail = Object.entries(error.body.details ?? {})
        .filter(([, v]) => typeof v !== "object")
        .map(([k, v]) => `${k}=${String(v as string)}`)
        .join(" ");
      io.stderr.write(
        `error: ${error.body.code} ${error.body.reason}: ${error.body.message}${detail ? ` (${detail})` : ""}\n`,
      );
      return 1;
    }
    if (error instanceof UsageError || error instanceof SyntaxError || (error as Error).name === "YError") {
      io.stderr.write(`vplanectl: ${(error as Error).message}\n(see vplanectl <command> --help)\n`);
      return 2;
    }
    if (error instanceof Error && /is not a size/.test(error.message)) {
      io.stderr.write(`vplanectl: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}
