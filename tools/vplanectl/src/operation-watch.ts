import type { components } from "@vplane/gateway-client";
import { ApiError, type ApiClient } from "./api-client.js";
import type { CommandContext, CliIo } from "./command-context.js";
import type { Column } from "./output.js";
import { ProgressBar } from "./progress-bar.js";

type Operation = components["schemas"]["Operation"];
/** A live migration's mirrored progress (metadata.migration of a migrate operation). */
type MigrationStatus = components["schemas"]["MigrationStatus"];
/** The data of a `progress` event (the document types the stream as text, so it is spelt here). */
interface ProgressEvent {
  progressPercent: number;
  step: string;
  state: string;
  migration?: MigrationStatus;
}

export const OPERATION_COLUMNS: Column<Operation>[] = [
  ["NAME", (o) => o.name],
  ["KIND", (o) => o.metadata.kind],
  ["VM", (o) => o.metadata.vm],
  ["STATE", (o) => o.metadata.state],
  ["PROGRESS", (o) => `${o.metadata.progressPercent}%`],
  ["STEP", (o) => o.metadata.step],
  ["ERROR", (o) => (o.error ? `${o.error.code} ${o.error.reason}` : "")],
];

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)}MiB`;

/** The progress bar's label: the step, or for a migration its phase, RAM copied, elapsed and downtime. */
function progressLabel(state: string, step: string, migration: MigrationStatus | undefined): string {
  if (!migration) return `${state.toLowerCase()} ${step}`;
  const ram =
    migration.ramBytesTotal > 0
      ? ` ram ${mib(migration.ramBytesTransferred)}/${mib(migration.ramBytesTotal)}`
      : "";
  const downtime = migration.downtimeMs > 0 ? ` downtime ${migration.downtimeMs}ms` : "";
  return `${state.toLowerCase()} ${migration.phase.toLowerCase()}${ram} ${migration.elapsedMs}ms${downtime}`;
}

/** Follows an operation's progress stream to its end, drawing a progress bar on stderr. */
async function watchOperation(api: ApiClient, name: string, io: CliIo): Promise<Operation> {
  const bar = new ProgressBar(io.stderr as NodeJS.WriteStream);
  const path = { operation: operationId(name) };
  let lastEventId: string | undefined;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const events = api.events(
        (init) => api.gateway.GET("/v1/operations/{operation}/events", { params: { path }, ...init }),
        { lastEventId },
      );
      for await (const event of events) {
        if (event.id) lastEventId = event.id;
        if (event.event === "progress") {
          const p = event.data as ProgressEvent;
          bar.update(p.progressPercent, progressLabel(p.state, p.step, p.migration));
        } else if (event.event === "done") {
          const operation = event.data as Operation;
          const { state, migration } = operation.metadata;
          bar.update(
            operation.metadata.progressPercent,
            migration ? progressLabel(state, "", migration) : state.toLowerCase(),
          );
          bar.finish();
          return operation;
        }
      }
    } catch (error) {
      if (error instanceof ApiError && error.status !== 0) throw error;
    }
    // The stream broke off: resume from the last event seen (Last-Event-ID).
    await new Promise((resolve) => setTimeout(resolve, 200 * (attempt + 1)));
  }
  bar.finish();
  return api.call(api.gateway.GET("/v1/operations/{operation}", { params: { path } }));
}

/** Prints the operation (its end, when waiting); a failed one exits 1 with its error. */
export async function finishOperation(context: CommandContext, operation: Operation, wait: boolean) {
  const final = wait ? await watchOperation(context.api, operation.name, context.io) : operation;
  context.print(final, [final], OPERATION_COLUMNS);
  if (final.error) throw new ApiError(0, { ...final.error, details: {} });
}

/** "operations/op-1" or "op-1" → "op-1", the path parameter. */
export function operationId(name: string): string {
  return name.startsWith("operations/") ? name.slice("operations/".length) : name;
}
