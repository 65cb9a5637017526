import type { Argv } from "yargs";
import type { components } from "@vplane/gateway-client";
import { asInteger, asIntegers, asUint64 } from "../cli-arguments.js";
import { UsageError } from "../cli-config.js";
import { idempotencyHeader, type ContextFactory } from "../command-context.js";

/** ESB management-page loads (Linux xive-regs.h, the XIVE digest §3): what each named op reads. */
const ESB_LOADS = {
  eoi: 0x000,
  get: 0x800,
  "set-pq-00": 0xc00,
  "set-pq-01": 0xd00,
  "set-pq-10": 0xe00,
  "set-pq-11": 0xf00,
} as const;
const ESB_OPS = [
  "eoi",
  "get",
  "set-pq-00",
  "set-pq-01",
  "set-pq-10",
  "set-pq-11",
  "trigger",
  "load",
  "store",
] as const;

/** TIMA OS page (page 2 << 16): the CPPR byte (store) and TM_SPC_ACK_OS_REG (16-bit load). */
const TIMA_OS_CPPR = 0x2_0011;
const TIMA_OS_ACK = 0x2_0810;
const TIMA_OPS = ["ack", "set-cppr", "load", "store"] as const;

/** KVM_DEV_XIVE_GRP_SOURCE_CONFIG's u64: priority 2:0, server 31:3, masked 32, EISN 63:33. */
function kvmSourceConfig(server: number, priority: number, masked: boolean, eisn: number): string {
  return (
    (BigInt(eisn) << 33n) |
    (BigInt(masked ? 1 : 0) << 32n) |
    (BigInt(server) << 3n) |
    BigInt(priority)
  ).toString();
}

type Schemas = components["schemas"];

const vm = (y: Argv) => y.positional("vm", { type: "string", demandOption: true, describe: "VM id" });
const irqs = { type: "string", array: true, demandOption: true, coerce: asIntegers("--irq") } as const;

export function interruptCommands(yargs: Argv, context: ContextFactory): Argv {
  return yargs
    .command("vcpus", "vCPUs of the interrupt controller: connect", (vcpus) =>
      vcpus
        .command(
          "connect <vm>",
          "Connect a vCPU to the controller (KVM_CAP_PPC_IRQ_XIVE); its server number defaults to its id",
          (y) =>
            vm(y)
              .option("vcpu", { type: "string", demandOption: true, coerce: asInteger("--vcpu") })
              .option("server", { type: "string", coerce: asInteger("--server") })
              .option("idempotency-key", { type: "string" }),
          async (argv) => {
            const ctx = context(argv);
            const body = { vcpuId: argv.vcpu, server: argv.server ?? argv.vcpu };
            const headers = idempotencyHeader(argv["idempotency-key"]);
            const answer = ctx.api.gateway.POST("/v1/vms/{vm}/vcpus/connect", {
              params: { path: { vm: argv.vm } },
              body,
              ...(headers ? { headers } : {}),
            });
            ctx.printAnswer(await ctx.api.call(answer));
          },
        )
        .demandCommand(1, "vcpus: say which: connect"),
    )
    .command("sources", "Interrupt sources: init, configure, get", (sources) =>
      sources
        .command(
          "init <vm>",
          "Create sources (KVM SOURCE); an MSI starts with PQ=01, off, until SET_PQ_00 (esb ... set-pq-00)",
          (y) =>
            vm(y)
              .option("irq", irqs)
              .option("lsi", { type: "boolean", default: false, describe: "level-sensitive" })
              .option("asserted", { type: "boolean", default: false, describe: "an LSI whose line is up" }),
          async (argv) => {
            const ctx = context(argv);
            const body = {
              sources: argv.irq.map((irq) => ({
                irq,
                levelSensitive: argv.lsi,
                asserted: argv.asserted,
              })),
            };
            const answer = ctx.api.gateway.POST("/v1/vms/{vm}/sources/init", {
              params: { path: { vm: argv.vm } },
              body,
            });
            ctx.printAnswer(await ctx.api.call(answer));
          },
        )
        .command(
          "configure <vm>",
          "Route sources to a vCPU's queue (KVM SOURCE_CONFIG); EISN, the word written to the queue, defaults to the irq",
          (y) =>
            vm(y)
              .option("irq", irqs)
              .option("server", { type: "string", demandOption: true, coerce: asInteger("--server") })
              .option("priority", { type: "string", demandOption: true, coerce: asInteger("--priority") })
              .option("eisn", { type: "string", coerce: asInteger("--eisn") })
              .option("masked", { type: "boolean", default: false })
              .option("idempotency-key", { type: "string" }),
          async (argv) => {
            const ctx = context(argv);
            const body = {
              sources: argv.irq.map((irq) => ({
                irq,
                kvmConfig: kvmSourceConfig(argv.server, argv.priority, argv.masked, argv.eisn ?? irq),
              })),
            };
            const headers = idempotencyHeader(argv["idempotency-key"]);
            const answer = ctx.api.gateway.POST("/v1/vms/{vm}/sources/configure", {
              params: { path: { vm: argv.vm } },
              body,
              ...(headers ? { headers } : {}),
            });
            ctx.printAnswer(await ctx.api.call(answer));
          },
        )
        .command(
          "get <vm> <irq>",
          "A source's state (PQ) and routing (EAS)",
          (y) => vm(y).positional("irq", { type: "string", demandOption: true, coerce: asInteger("IRQ") }),
          async (argv) => {
            const ctx = context(argv);
            const answer = ctx.api.gateway.GET("/v1/vms/{vm}/sources/{irq}", {
              params: { path: { vm: argv.vm, irq: argv.irq } },
            });
            ctx.printAnswer(await ctx.api.call(answer));
          },
        )
        .demandCommand(1, "sources: say which: init, configure, get"),
    )
    .command("queues", "Event queues: configure, get", (queues) =>
      queues
        .command(
          "configure <vm>",
          "Give a vCPU's priority an event queue in guest RAM (KVM EQ_CONFIG)",
          (y) =>
            vm(y)
              .option("server", { type: "string", demandOption: true, coerce: asInteger("--server") })
              .option("priority", { type: "string", demandOption: true, coerce: asInteger("--priority") })
              .option("qaddr", {
                type: "string",
                demandOption: true,
                coerce: asUint64("--qaddr"),
                describe: "guest-physical address",
              })
              .option("qshift", {
                type: "string",
                default: "16",
                coerce: asInteger("--qshift"),
                describe: "log2 of the queue's bytes",
              }),
          async (argv) => {
            const ctx = context(argv);
            const body = { queue: { flags: 1, qshift: argv.qshift, qaddr: argv.qaddr } };
            const answer = ctx.api.gateway.PUT("/v1/vms/{vm}/queues/{server}/{priority}", {
              params: { path: { vm: argv.vm, server: argv.server, priority: argv.priority } },
              body,
            });
            ctx.printAnswer(await ctx.api.call(answer));
          },
        )
        .command(
          "get <vm> <server> <priority>",
          "A queue's config with its live toggle and index",
          (y) =>
            vm(y)
              .positional("server", { type: "string", demandOption: true, coerce: asInteger("SERVER") })
              .positional("priority", { type: "string", demandOption: true, coerce: asInteger("PRIORITY") }),
          async (argv) => {
            const ctx = context(argv);
            const answer = ctx.api.gateway.GET("/v1/vms/{vm}/queues/{server}/{priority}", {
              params: { path: { vm: argv.vm, server: argv.server, priority: argv.priority } },
            });
            ctx.printAnswer(await ctx.api.call(answer));
          },
        )
        .demandCommand(1, "queues: say which: configure, get"),
    )
    .command(
      "esb <vm> <irq> <op>",
      "A load or store on a source's ESB pages: get, eoi, set-pq-00/01/10/11 (load; answer: old PQ), trigger, or raw load/store at --offset",
      (y) =>
        vm(y)
          .positional("irq", { type: "string", demandOption: true, coerce: asInteger("IRQ") })
          .positional("op", { choices: ESB_OPS, demandOption: true })
          .option("offset", {
            type: "string",
            coerce: asInteger("--offset"),
            describe: "raw: offset in the page",
          })
          .option("page", { choices: ["management", "trigger"] as const, default: "management" as const })
          .option("value", { type: "string", coerce: asUint64("--value"), describe: "raw store: the value" }),
      async (argv) => {
        const ctx = context(argv);
        const op = argv.op;
        let body: Schemas["EsbAccessRequest"];
        if (op === "trigger")
          body = { page: "ESB_PAGE_TRIGGER", offset: 0, kind: "ACCESS_KIND_STORE", value: "0" };
        else if (op === "load" || op === "store") {
          if (argv.offset === undefined) throw new UsageError(`esb ${op} needs --offset`);
          body = {
            page: argv.page === "trigger" ? "ESB_PAGE_TRIGGER" : "ESB_PAGE_MANAGEMENT",
            offset: argv.offset,
            kind: op === "load" ? "ACCESS_KIND_LOAD" : "ACCESS_KIND_STORE",
            value: argv.value ?? "0",
          };
        } else body = { page: "ESB_PAGE_MANAGEMENT", offset: ESB_LOADS[op], kind: "ACCESS_KIND_LOAD" };
        const answer = ctx.api.gateway.POST("/v1/vms/{vm}/sources/{irq}/esb", {
          params: { path: { vm: argv.vm, irq: argv.irq } },
          body,
        });
        ctx.printAnswer(await ctx.api.call(answer));
      },
    )
    .command(
      "tima <vm> <server> <op>",
      "A vCPU's access to the TIMA OS page: ack (TM_SPC_ACK_OS_REG), set-cppr --value P, or raw load/store at --offset",
      (y) =>
        vm(y)
          .positional("server", { type: "string", demandOption: true, coerce: asInteger("SERVER") })
          .positional("op", { choices: TIMA_OPS, demandOption: true })
          .option("offset", {
            type: "string",
            coerce: asInteger("--offset"),
            describe: "raw: page << 16 | offset",
          })
          .option("size", {
            type: "string",
            coerce: asInteger("--size"),
            describe: "raw: 1, 2, 4 or 8 bytes",
          })
          .option("value", { type: "string", coerce: asUint64("--value") }),
      async (argv) => {
        const ctx = context(argv);
        let body: Schemas["TimaAccessRequest"];
        if (argv.op === "ack") body = { offset: TIMA_OS_ACK, size: 2, kind: "ACCESS_KIND_LOAD" };
        else if (argv.op === "set-cppr") {
          if (argv.value === undefined)
            throw new UsageError("tima set-cppr needs --value (0-7, or 0xff: all)");
          body = { offset: TIMA_OS_CPPR, size: 1, kind: "ACCESS_KIND_STORE", value: argv.value };
        } else {
          if (argv.offset === undefined || argv.size === undefined)
            throw new UsageError(`tima ${argv.op} needs --offset and --size`);
          body = {
            offset: argv.offset,
            size: argv.size,
            kind: argv.op === "load" ? "ACCESS_KIND_LOAD" : "ACCESS_KIND_STORE",
            value: argv.value ?? "0",
          };
        }
        const answer = ctx.api.gateway.POST("/v1/vms/{vm}/vcpus/{server}/tima", {
          params: { path: { vm: argv.vm, server: argv.server } },
          body,
        });
        ctx.printAnswer(await ctx.api.call(answer));
      },
    )
    .command(
      "trigger <vm>",
      "Raise sources as a device would (irqfd); answers delivered / coalesced / masked / dropped",
      (y) => vm(y).option("irq", irqs),
      async (argv) => {
        const ctx = context(argv);
        const answer = ctx.api.gateway.POST("/v1/vms/{vm}/sources/trigger", {
          params: { path: { vm: argv.vm } },
          body: { irqs: argv.irq },
        });
        ctx.printAnswer(await ctx.api.call(answer));
      },
    );
}
