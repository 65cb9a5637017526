import type { Argv } from "yargs";
import { stringify } from "yaml";
import { asInteger } from "../cli-arguments.js";
import type { EventStreamCall } from "../api-client.js";
import type { CommandContext, ContextFactory } from "../command-context.js";

/** How long `events` without --follow waits for one more event before it exits. */
const DEFAULT_IDLE_MS = 1000;

/** The options of both event verbs. */
export function eventOptions<T>(y: Argv<T>) {
  return y
    .option("follow", { type: "boolean", default: false, describe: "keep printing new events until Ctrl-C" })
    .option("since", {
      type: "string",
      coerce: asInteger("--since"),
      describe: "replay the buffered events after this sequence number (Last-Event-ID)",
    })
    .option("idle-ms", {
      type: "string",
      coerce: asInteger("--idle-ms"),
      describe: `without --follow: exit once no event came for this long (default ${DEFAULT_IDLE_MS})`,
    });
}

/**
 * Prints a device's Server-Sent Events: one line per event (table: ID, EVENT, DATA; json: one
 * object per line; yaml: one document per event). Without --follow it prints what arrives until
 * the stream is quiet for --idle-ms, then exits; with it, until Ctrl-C.
 */
export async function printEvents(
  ctx: CommandContext,
  open: EventStreamCall,
  options: { follow: boolean; since?: number | undefined; idleMs?: number | undefined },
): Promise<void> {
  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once("SIGINT", stop);
  try {
    const events = ctx.api.events(open, {
      ...(options.since !== undefined ? { lastEventId: String(options.since) } : {}),
      signal: abort.signal,
      ...(options.follow ? {} : { idleMs: options.idleMs ?? DEFAULT_IDLE_MS }),
    });
    for await (const event of events) {
      const record = { id: event.id, event: event.event, data: event.data };
      const format = ctx.config.output;
      ctx.io.stdout.write(
        format === "json"
          ? `${JSON.stringify(record)}\n`
          : format === "yaml"
            ? `---\n${stringify(record)}`
            : `${event.id ?? "-"}\t${event.event}\t${JSON.stringify(event.data)}\n`,
      );
    }
  } catch (error) {
    if (!abort.signal.aborted) throw error;
  } finally {
    process.off("SIGINT", stop);
  }
}

export function eventCommands(yargs: Argv, context: ContextFactory): Argv {
  return yargs.command(
    "events <vm>",
    "A VM's vCPU signals (or, with --smmu, an SMMU's faults and page requests) as they stream",
    (y) =>
      eventOptions(
        y
          .positional("vm", { type: "string", demandOption: true })
          .option("smmu", { type: "string", describe: "the SMMU's events instead of the vCPU signals" }),
      ),
    async (argv) => {
      const ctx = context(argv);
      const { vm, smmu } = argv;
      const open: EventStreamCall = (init) =>
        smmu
          ? ctx.api.gateway.GET("/v1/vms/{vm}/smmus/{smmu}/events", {
              params: { path: { vm, smmu } },
              ...init,
            })
          : ctx.api.gateway.GET("/v1/vms/{vm}/vcpu-signals", { params: { path: { vm } }, ...init });
      await printEvents(ctx, open, {
        follow: argv.follow,
        since: argv.since,
        idleMs: argv["idle-ms"],
      });
    },
  );
}
