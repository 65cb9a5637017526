import { parseArgs } from "node:util";
import { ApiClient, ApiError } from "./api-client.js";
import { parseByteSize } from "./byte-size.js";
import { resolveConfig, UsageError, type CliConfig } from "./cli-config.js";
import { render, type Column } from "./output.js";
import { ProgressBar } from "./progress-bar.js";

export const USAGE = `vplanectl: the vplane gateway's REST API from a shell

usage: vplanectl [--url URL] [--token TOKEN] [--output json|table] [--config FILE] COMMAND

  vms list | get VM | delete VM [--wait]
  vms create --name VM --vcpus N --memory SIZE --mode xive|xics|dual [--backend auto|emulated|native]
             [--nr-servers N] [--smmu NAME[=PHYS:VIRT,...]]... [--iommu-backend B] [--host HOST]
             [--file SPEC.json] [--idempotency-key KEY] [--wait]
  hosts list | get HOST | remove HOST
  hosts register --name HOST --interrupt-addr A --iommu-addr A --migration-addr A [--vcpus N] [--memory SIZE]
  operations list | get OP | watch OP | cancel OP
  migrate VM --to HOST [--downtime-limit-ms N] [--vmm-moves-ram] [--no-wait] [--idempotency-key KEY]
                                          (live migration; watches it with a progress bar unless --no-wait)
  sources get VM IRQ | configure VM --irq N --server S --priority P [--eisn E] [--masked]
  queues get VM SERVER PRIORITY | configure VM --server S --priority P --qaddr ADDR [--qshift 16]
  trigger VM --irq N [--irq N]...
  events VM [--smmu SMMU] [--follow]      (vCPU signals, or an SMMU's faults and page requests)
  api METHOD PATH [--data JSON]           (any route, raw)

Settings come from flags, else VPLANE_URL / VPLANE_TOKEN / VPLANE_OUTPUT, else the config file
(--config, VPLANE_CONFIG, or ~/.config/vplane/config.json: {"url": ..., "token": ..., "output": ...}).
Exit status: 0 ok, 1 the API answered an error (printed as CODE REASON: message), 2 bad usage.
`;

const OPTIONS = {
  url: { type: "string" },
  token: { type: "string" },
  output: { type: "string", short: "o" },
  config: { type: "string" },
  help: { type: "boolean", short: "h" },
  name: { type: "string" },
  vcpus: { type: "string" },
  memory: { type: "string" },
  mode: { type: "string" },
  backend: { type: "string" },
  "nr-servers": { type: "string" },
  smmu: { type: "string", multiple: true },
  "iommu-backend": { type: "string" },
  host: { type: "string" },
  file: { type: "string", short: "f" },
  "idempotency-key": { type: "string" },
  wait: { type: "boolean" },
  follow: { type: "boolean" },
  "interrupt-addr": { type: "string" },
  "iommu-addr": { type: "string" },
  "migration-addr": { type: "string" },
  irq: { type: "string", multiple: true },
  server: { type: "string" },
  priority: { type: "string" },
  eisn: { type: "string" },
  masked: { type: "boolean" },
  qaddr: { type: "string" },
  qshift: { type: "string" },
  data: { type: "string" },
  to: { type: "string" },
  "downtime-limit-ms": { type: "string" },
  "vmm-moves-ram": { type: "boolean" },
  "no-wait": { type: "boolean" },
} as const;

export interface CliIo {
  env: NodeJS.ProcessEnv;
  stdout: NodeJS.WriteStream | { write(text: string): unknown; isTTY?: boolean };
  stderr: NodeJS.WriteStream | { write(text: string): unknown; isTTY?: boolean };
}

type Values = ReturnType<typeof parse>["values"];
function parse(argv: readonly string[]) {
  return parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
}

function integer(text: string | undefined, flag: string): number {
  if (text === undefined) throw new UsageError(`--${flag} is required`);
  const n = Number(text);
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(text) || !Number.isSafeInteger(n))
    throw new UsageError(`--${flag} must be an integer, not '${text}'`);
  return n;
}

function required(text: string | undefined, what: string): string {
  if (!text) throw new UsageError(`${what} is required (see --help)`);
  return text;
}

interface Vm {
  name: string;
  state: string;
  host: string;
  vcpus: number;
  memoryBytes: number;
  interruptController: { mode: string; backend: string };
  resolved: { interruptController?: { backend: string } };
  iommu: { smmus: { name: string }[] };
}
/** A live migration's mirrored progress (metadata.migration of a migrate operation). */
interface MigrationStatus {
  phase: string;
  ramBytesTotal: number;
  ramBytesTransferred: number;
  elapsedMs: number;
  downtimeMs: number;
}
interface Operation {
  name: string;
  done: boolean;
  metadata: {
    kind: string;
    vm: string;
    state: string;
    progressPercent: number;
    step: string;
    migration?: MigrationStatus;
  };
  error?: { code: string; reason: string; message: string };
}
interface ProgressEvent {
  progressPercent: number;
  step: string;
  state: string;
  migration?: MigrationStatus;
}
interface Host {
  name: string;
  addresses: Record<string, string>;
  usage: { vms: number; vcpus: number; memoryBytes: number };
  capacity: { vcpus: number; memoryBytes: number };
  services?: Record<string, { health: string }>;
}

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
const OPERATION_COLUMNS: Column<Operation>[] = [
  ["NAME", (o) => o.name],
  ["KIND", (o) => o.metadata.kind],
  ["VM", (o) => o.metadata.vm],
  ["STATE", (o) => o.metadata.state],
  ["PROGRESS", (o) => `${o.metadata.progressPercent}%`],
  ["STEP", (o) => o.metadata.step],
  ["ERROR", (o) => (o.error ? `${o.error.code} ${o.error.reason}` : "")],
];
const HOST_COLUMNS: Column<Host>[] = [
  ["NAME", (h) => h.name],
  ["VMS", (h) => h.usage.vms],
  ["VCPUS", (h) => `${h.usage.vcpus}/${h.capacity.vcpus || "-"}`],
  ["INTERRUPT", (h) => h.services?.["interruptController"]?.health ?? h.addresses["interruptController"]],
  ["IOMMU", (h) => h.services?.["iommu"]?.health ?? h.addresses["iommu"]],
  ["MIGRATION", (h) => h.services?.["migration"]?.health ?? h.addresses["migration"]],
];

/** "s0" or "s0=16:1,17:2" (physical:virtual StreamIDs). */
function parseSmmu(text: string) {
  const [name, devices] = text.split("=", 2);
  return {
    name: required(name, "--smmu NAME"),
    ...(devices
      ? {
          devices: devices.split(",").map((pair) => {
            const [physical, virtual] = pair.split(":");
            return {
              physicalSid: integer(physical, "smmu physical StreamID"),
              virtualSid: integer(virtual, "smmu virtual StreamID"),
            };
          }),
        }
      : {}),
  };
}

function vmSpecFrom(values: Values, fileText?: string): unknown {
  if (fileText !== undefined) return JSON.parse(fileText);
  const smmus = (values.smmu ?? []).map(parseSmmu);
  return {
    name: required(values.name, "--name"),
    vcpus: integer(values.vcpus, "vcpus"),
    memoryBytes: parseByteSize(required(values.memory, "--memory")),
    interruptController: {
      mode: required(values.mode, "--mode"),
      ...(values.backend ? { backend: values.backend } : {}),
      ...(values["nr-servers"] ? { nrServers: integer(values["nr-servers"], "nr-servers") } : {}),
    },
    ...(smmus.length > 0
      ? { iommu: { smmus, ...(values["iommu-backend"] ? { backend: values["iommu-backend"] } : {}) } }
      : {}),
    ...(values.host ? { placement: { host: values.host } } : {}),
  };
}

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
  let lastEventId: string | undefined;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      for await (const event of api.events(`/v1/${name}/events`, lastEventId ? { lastEventId } : {})) {
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
  return api.request<Operation>("GET", `/v1/${name}`);
}

async function finishOperation(
  api: ApiClient,
  operation: Operation,
  config: CliConfig,
  io: CliIo,
  wait: boolean,
) {
  const final = wait ? await watchOperation(api, operation.name, io) : operation;
  io.stdout.write(render(config.output, final, [final], OPERATION_COLUMNS));
  if (final.error) throw new ApiError(0, { ...final.error, details: {} });
}

export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    const { values, positionals } = parse(argv);
    if (values.help || positionals.length === 0) {
      io.stdout.write(USAGE);
      return positionals.length === 0 && !values.help ? 2 : 0;
    }
    const config = resolveConfig(values, io.env);
    const api = new ApiClient(config.url, config.token);
    const [resource, verb, ...args] = positionals;
    const out = (data: unknown, rows: unknown[], columns: Column<never>[]) =>
      io.stdout.write(render(config.output, data, rows as never[], columns));
    const idempotency = values["idempotency-key"]
      ? { "idempotency-key": values["idempotency-key"] }
      : undefined;
    switch (`${resource} ${verb ?? ""}`.trim()) {
      case "vms list": {
        const vms: Vm[] = [];
        let pageToken: string | undefined;
        do {
          const page = await api.request<{ vms: Vm[]; nextPageToken?: string }>(
            "GET",
            `/v1/vms?pageSize=1000${pageToken ? `&pageToken=${encodeURIComponent(pageToken)}` : ""}`,
          );
          vms.push(...page.vms);
          pageToken = page.nextPageToken;
        } while (pageToken);
        out({ vms }, vms, VM_COLUMNS);
        return 0;
      }
      case "vms get": {
        const vm = await api.request<Vm>("GET", `/v1/vms/${required(args[0], "VM")}`);
        out(vm, [vm], VM_COLUMNS);
        return 0;
      }
      case "vms create": {
        const { readFileSync } = await import("node:fs");
        const spec = vmSpecFrom(values, values.file ? readFileSync(values.file, "utf8") : undefined);
        const operation = await api.request<Operation>("POST", "/v1/vms", spec, idempotency);
        await finishOperation(api, operation, config, io, values.wait ?? false);
        return 0;
      }
      case "vms delete": {
        const operation = await api.request<Operation>("DELETE", `/v1/vms/${required(args[0], "VM")}`);
        await finishOperation(api, operation, config, io, values.wait ?? false);
        return 0;
      }
      case "hosts list": {
        const { hosts } = await api.request<{ hosts: Host[] }>("GET", "/v1/hosts");
        out({ hosts }, hosts, HOST_COLUMNS);
        return 0;
      }
      case "hosts get": {
        const host = await api.request<Host>("GET", `/v1/hosts/${required(args[0], "HOST")}`);
        out(host, [host], HOST_COLUMNS);
        return 0;
      }
      case "hosts register": {
        const host = await api.request<Host>(
          "POST",
          "/v1/hosts",
          {
            name: required(values.name, "--name"),
            addresses: {
              interruptController: required(values["interrupt-addr"], "--interrupt-addr"),
              iommu: required(values["iommu-addr"], "--iommu-addr"),
              migration: required(values["migration-addr"], "--migration-addr"),
            },
            ...(values.vcpus || values.memory
              ? {
                  capacity: {
                    vcpus: values.vcpus ? integer(values.vcpus, "vcpus") : 0,
                    memoryBytes: values.memory ? parseByteSize(values.memory) : 0,
                  },
                }
              : {}),
          },
          idempotency,
        );
        out(host, [host], HOST_COLUMNS);
        return 0;
      }
      case "hosts remove": {
        await api.request("DELETE", `/v1/hosts/${required(args[0], "HOST")}`);
        return 0;
      }
      case "operations list": {
        const { operations } = await api.request<{ operations: Operation[] }>(
          "GET",
          "/v1/operations?pageSize=1000",
        );
        out({ operations }, operations, OPERATION_COLUMNS);
        return 0;
      }
      case "operations get": {
        const operation = await api.request<Operation>("GET", `/v1/${operationName(args[0])}`);
        out(operation, [operation], OPERATION_COLUMNS);
        return 0;
      }
      case "operations watch": {
        const operation = await api.request<Operation>("GET", `/v1/${operationName(args[0])}`);
        await finishOperation(api, operation, config, io, true);
        return 0;
      }
      case "operations cancel": {
        const operation = await api.request<Operation>("POST", `/v1/${operationName(args[0])}/cancel`);
        out(operation, [operation], OPERATION_COLUMNS);
        return 0;
      }
      case `migrate ${verb}`: {
        const limit = values["downtime-limit-ms"];
        const operation = await api.request<Operation>(
          "POST",
          `/v1/vms/${verb}:migrate`,
          {
            destinationHost: required(values.to, "--to HOST"),
            ...(limit !== undefined ? { downtimeLimitMs: integer(limit, "downtime-limit-ms") } : {}),
            ...(values["vmm-moves-ram"] ? { vmmMovesRam: true } : {}),
          },
          idempotency,
        );
        await finishOperation(api, operation, config, io, !values["no-wait"]);
        return 0;
      }
      case "sources get": {
        const answer = await api.request<{ source: Record<string, unknown> }>(
          "GET",
          `/v1/vms/${required(args[0], "VM")}/sources/${integer(args[1], "IRQ")}`,
        );
        out(answer, [answer.source], keysOf(answer.source));
        return 0;
      }
      case "sources configure": {
        const server = BigInt(integer(values.server, "server"));
        const priority = BigInt(integer(values.priority, "priority"));
        const eisn = BigInt(values.eisn ? integer(values.eisn, "eisn") : 0);
        // KVM SOURCE_CONFIG layout: priority 2:0, server 31:3, masked 32, EISN 63:33.
        const kvmConfig = (eisn << 33n) | ((values.masked ? 1n : 0n) << 32n) | (server << 3n) | priority;
        const irq = integer(values.irq?.[0], "irq");
        const answer = await api.request<Record<string, unknown>>(
          "POST",
          `/v1/vms/${required(args[0], "VM")}/sources/configure`,
          { sources: [{ irq, kvmConfig: kvmConfig.toString() }] },
          idempotency,
        );
        out(answer, [answer], keysOf(answer));
        return 0;
      }
      case "queues get": {
        const answer = await api.request<{ queue: Record<string, unknown> }>(
          "GET",
          `/v1/vms/${required(args[0], "VM")}/queues/${integer(args[1], "SERVER")}/${integer(args[2], "PRIORITY")}`,
        );
        out(answer, [answer.queue], keysOf(answer.queue));
        return 0;
      }
      case "queues configure": {
        const answer = await api.request<Record<string, unknown>>(
          "PUT",
          `/v1/vms/${required(args[0], "VM")}/queues/${integer(values.server, "server")}/${integer(values.priority, "priority")}`,
          {
            queue: {
              flags: 1,
              qshift: values.qshift ? integer(values.qshift, "qshift") : 16,
              qaddr: String(integer(values.qaddr, "qaddr")),
            },
          },
        );
        out(answer, [answer], keysOf(answer));
        return 0;
      }
      case `trigger ${verb}`: {
        const irqs = (values.irq ?? []).map((irq) => integer(irq, "irq"));
        if (irqs.length === 0) throw new UsageError("--irq is required");
        const answer = await api.request<Record<string, unknown>>("POST", `/v1/vms/${verb}/sources/trigger`, {
          irqs,
        });
        out(answer, [answer], keysOf(answer));
        return 0;
      }
      case `events ${verb}`: {
        const path = values.smmu
          ? `/v1/vms/${verb}/smmus/${values.smmu[0]}/events`
          : `/v1/vms/${verb}/vcpu-signals`;
        const abort = new AbortController();
        const stop = () => abort.abort();
        process.once("SIGINT", stop);
        try {
          for await (const event of api.events(path, { signal: abort.signal })) {
            io.stdout.write(
              config.output === "json"
                ? `${JSON.stringify({ id: event.id, event: event.event, data: event.data })}\n`
                : `${event.id ?? "-"}\t${event.event}\t${JSON.stringify(event.data)}\n`,
            );
            if (!values.follow) break;
          }
        } catch (error) {
          if (!abort.signal.aborted) throw error;
        } finally {
          process.off("SIGINT", stop);
        }
        return 0;
      }
      case `api ${verb}`: {
        const answer = await api.request<unknown>(
          verb!.toUpperCase(),
          required(args[0], "PATH"),
          values.data ? JSON.parse(values.data) : undefined,
          idempotency,
        );
        io.stdout.write(`${JSON.stringify(answer ?? null, null, 2)}\n`);
        return 0;
      }
      default:
        throw new UsageError(`unknown command '${positionals.join(" ")}' (see --help)`);
    }
  } catch (error) {
    if (error instanceof ApiError) {
      const detail = Object.entries(error.body.details ?? {})
        .map(([k, v]) => `${k}=${String(v as string)}`)
        .join(" ");
      io.stderr.write(
        `error: ${error.body.code} ${error.body.reason}: ${error.body.message}${detail ? ` (${detail})` : ""}\n`,
      );
      return 1;
    }
    if (error instanceof UsageError || (error as NodeJS.ErrnoException).code?.startsWith("ERR_PARSE_ARGS")) {
      io.stderr.write(`vplanectl: ${(error as Error).message}\n`);
      return 2;
    }
    if (error instanceof Error && /is not a size|JSON/.test(error.message)) {
      io.stderr.write(`vplanectl: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}

function operationName(arg: string | undefined): string {
  const id = required(arg, "OPERATION");
  return id.startsWith("operations/") ? id : `operations/${id}`;
}

function keysOf(row: Record<string, unknown>): Column<never>[] {
  return Object.keys(row).map(
    (key) => [key.toUpperCase(), (r: Record<string, unknown>) => r[key]] as Column<never>,
  );
}
