import type { Argv } from "yargs";
import type { components } from "@vplane/gateway-client";
import { asInteger, asUint64 } from "../cli-arguments.js";
import { UsageError } from "../cli-config.js";
import type { EventStreamCall } from "../api-client.js";
import { idempotencyHeader, type ContextFactory } from "../command-context.js";
import { eventOptions, printEvents } from "./event-commands.js";

const PERMISSIONS = {
  r: "STAGE2_PERMISSION_READ",
  w: "STAGE2_PERMISSION_WRITE",
  rw: "STAGE2_PERMISSION_READ_WRITE",
} as const;
/** SeedPasidTable.config: what the guest's STE does with the device's DMA. */
const STE_CONFIGS = { translate: 1, bypass: 2, abort: 3 } as const;

const vmAndSmmu = (y: Argv) =>
  y
    .positional("vm", { type: "string", demandOption: true, describe: "VM id" })
    .positional("smmu", { type: "string", demandOption: true, describe: "the VM's SMMU" });

/** The path parameters of every SMMU route. */
const smmuPath = (argv: { vm: string; smmu: string }) => ({ path: { vm: argv.vm, smmu: argv.smmu } });

export function smmuCommands(yargs: Argv, context: ContextFactory): Argv {
  return yargs.command("smmus", "A VM's SMMUs: map, attach, translate, events", (smmus) =>
    smmus
      .command(
        "map <vm> <smmu>",
        "Map guest-physical memory in the host stage 2 (VFIO MAP_DMA rules)",
        (y) =>
          vmAndSmmu(y)
            .option("ipa", {
              type: "string",
              demandOption: true,
              coerce: asUint64("--ipa"),
              describe: "guest-physical address",
            })
            .option("host-address", {
              type: "string",
              demandOption: true,
              coerce: asUint64("--host-address"),
              describe: "offset in the guest-RAM backing",
            })
            .option("size", {
              type: "string",
              demandOption: true,
              coerce: asUint64("--size"),
              describe: "bytes",
            })
            .option("permission", {
              choices: Object.keys(PERMISSIONS) as (keyof typeof PERMISSIONS)[],
              default: "rw" as const,
            })
            .option("idempotency-key", { type: "string" }),
        async (argv) => {
          const ctx = context(argv);
          const mapping = {
            ipa: argv.ipa,
            hostAddress: argv["host-address"],
            size: argv.size,
            permission: PERMISSIONS[argv.permission],
          };
          const headers = idempotencyHeader(argv["idempotency-key"]);
          const answer = ctx.api.gateway.POST("/v1/vms/{vm}/smmus/{smmu}/stage2/map", {
            params: smmuPath(argv),
            body: { mapping },
            ...(headers ? { headers } : {}),
          });
          ctx.printAnswer(await ctx.api.call(answer));
        },
      )
      .command(
        "attach <vm> <smmu>",
        "Install the guest's stage-1 config: --stage1 translate --cd-table IPA (the seed PASID table form), bypass or abort; or one device's guest STE (--stream-id --ste0 --ste1)",
        (y) =>
          vmAndSmmu(y)
            .option("stage1", { choices: Object.keys(STE_CONFIGS) as (keyof typeof STE_CONFIGS)[] })
            .option("cd-table", {
              type: "string",
              coerce: asUint64("--cd-table"),
              describe: "IPA of the CD table",
            })
            .option("stream-id", {
              type: "string",
              coerce: asInteger("--stream-id"),
              describe: "guest STE: physical StreamID",
            })
            .option("ste0", { type: "string", coerce: asUint64("--ste0") })
            .option("ste1", { type: "string", coerce: asUint64("--ste1") })
            .option("fault-id-valid", {
              type: "boolean",
              default: false,
              describe: "guest STE: stage-1 faults become page requests",
            })
            .option("idempotency-key", { type: "string" }),
        async (argv) => {
          const ctx = context(argv);
          let body: components["schemas"]["AttachPasidTableRequest"];
          if (argv["stream-id"] !== undefined) {
            if (argv.ste0 === undefined) throw new UsageError("a guest STE needs --ste0 (and --ste1)");
            body = {
              guestSte: {
                streamId: argv["stream-id"],
                ste0: argv.ste0,
                ste1: argv.ste1 ?? "0",
                flags: argv["fault-id-valid"] ? 4 : 0,
              },
            };
          } else {
            if (!argv.stage1)
              throw new UsageError("say --stage1 translate|bypass|abort, or --stream-id with --ste0");
            if (argv.stage1 === "translate" && argv["cd-table"] === undefined)
              throw new UsageError("--stage1 translate needs --cd-table");
            body = {
              seed: {
                version: 1,
                format: 1,
                basePtr: argv["cd-table"] ?? "0",
                pasidBits: 0,
                config: STE_CONFIGS[argv.stage1],
                smmuv3Version: 1,
              },
            };
          }
          const headers = idempotencyHeader(argv["idempotency-key"]);
          const answer = ctx.api.gateway.POST("/v1/vms/{vm}/smmus/{smmu}/pasid-table/attach", {
            params: smmuPath(argv),
            body,
            ...(headers ? { headers } : {}),
          });
          ctx.printAnswer(await ctx.api.call(answer));
        },
      )
      .command(
        "translate <vm> <smmu>",
        "Translate an IOVA for a device through both stages (a fault is recorded as an event)",
        (y) =>
          vmAndSmmu(y)
            .option("stream-id", {
              type: "string",
              demandOption: true,
              coerce: asInteger("--stream-id"),
              describe: "physical StreamID",
            })
            .option("substream-id", { type: "string", coerce: asInteger("--substream-id") })
            .option("iova", { type: "string", demandOption: true, coerce: asUint64("--iova") })
            .option("write", { type: "boolean", default: false }),
        async (argv) => {
          const ctx = context(argv);
          const body = {
            streamId: argv["stream-id"],
            ...(argv["substream-id"] !== undefined ? { substreamId: argv["substream-id"] } : {}),
            iova: argv.iova,
            write: argv.write,
          };
          const answer = ctx.api.gateway.POST("/v1/vms/{vm}/smmus/{smmu}/translate", {
            params: smmuPath(argv),
            body,
          });
          ctx.printAnswer(await ctx.api.call(answer));
        },
      )
      .command(
        "events <vm> <smmu>",
        "The SMMU's fault events and page requests as they stream",
        (y) => eventOptions(vmAndSmmu(y)),
        async (argv) => {
          const ctx = context(argv);
          const open: EventStreamCall = (init) =>
            ctx.api.gateway.GET("/v1/vms/{vm}/smmus/{smmu}/events", { params: smmuPath(argv), ...init });
          await printEvents(ctx, open, {
            follow: argv.follow,
            since: argv.since,
            idleMs: argv["idle-ms"],
          });
        },
      )
      .demandCommand(1, "smmus: say which: map, attach, translate, events"),
  );
}
