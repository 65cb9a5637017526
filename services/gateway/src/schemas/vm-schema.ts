import { Type, type Static } from "@sinclair/typebox";
import { ResourceId, Timestamp } from "./resource-id.js";
import { StringEnum } from "./string-enum.js";

const MIB = 1024 * 1024;

export const RequestedBackendSchema = StringEnum(["auto", "emulated", "native"], {
  description: "auto: native where the host offers it, else emulated (the choice and why are recorded)",
});

export const InterruptControllerSpecSchema = Type.Object(
  {
    mode: StringEnum(["xive", "xics", "dual"], {
      description: "xive: POWER9 exploitation mode; xics: legacy; dual: the guest picks at boot (CAS)",
    }),
    backend: Type.Optional(RequestedBackendSchema),
    nrServers: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 2048,
        description: "server ids (NR_SERVERS), 1..2048; 0 or unset: 2048",
      }),
    ),
  },
  { additionalProperties: false, title: "InterruptControllerSpec" },
);

export const StreamMappingSchema = Type.Object(
  {
    physicalSid: Type.Integer({
      minimum: 0,
      maximum: 0xffffffff,
      description: "host StreamID of the device",
    }),
    virtualSid: Type.Integer({ minimum: 0, maximum: 0xffffffff, description: "StreamID the guest sees" }),
  },
  { additionalProperties: false, title: "StreamMapping" },
);

export const SmmuSpecSchema = Type.Object(
  {
    name: ResourceId("SMMU id within the VM"),
    sidBits: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 32, description: "StreamID width (SIDSIZE); unset: 16" }),
    ),
    ssidBits: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 20, description: "SubstreamID width (SSIDSIZE); unset: 20" }),
    ),
    pri: Type.Optional(Type.Boolean({ description: "page request interface; unset: false" })),
    devices: Type.Optional(Type.Array(StreamMappingSchema, { maxItems: 256 })),
  },
  { additionalProperties: false, title: "SmmuSpec" },
);

export const IommuSpecSchema = Type.Object(
  {
    backend: Type.Optional(RequestedBackendSchema),
    smmus: Type.Array(SmmuSpecSchema, { maxItems: 16, description: "virtual SMMUv3 instances" }),
  },
  { additionalProperties: false, title: "IommuSpec" },
);

/** What a caller sends to create a VM. */
export const VmSpecSchema = Type.Object(
  {
    name: ResourceId("VM id, chosen by the caller, unique within the tenant"),
    vcpus: Type.Integer({ minimum: 1, maximum: 2048 }),
    memoryBytes: Type.Integer({
      minimum: MIB,
      maximum: 16 * 1024 * 1024 * MIB,
      multipleOf: 4096,
      description: "guest RAM size in bytes, a 4 KiB multiple, 1 MiB .. 16 TiB",
    }),
    interruptController: InterruptControllerSpecSchema,
    iommu: Type.Optional(IommuSpecSchema),
    placement: Type.Optional(
      Type.Object(
        { host: Type.Optional(ResourceId("host to place the VM on; unset: chosen by free capacity")) },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false, title: "VmSpec" },
);

export const VmStateSchema = StringEnum(["CREATING", "READY", "DELETING", "FAILED"], {
  description: "FAILED: a create or delete could not undo or finish its work; delete it again",
});

export const BackendChoiceSchema = Type.Object(
  { backend: StringEnum(["emulated", "native"]), reason: Type.String() },
  { title: "BackendChoice" },
);

/** A VM as the registry keeps it and the API shows it. */
export const VmSchema = Type.Object(
  {
    name: Type.String(),
    tenant: Type.String(),
    uid: Type.String({ description: "the VM id on the host services (unique across tenants)" }),
    vcpus: Type.Integer(),
    memoryBytes: Type.Integer(),
    interruptController: Type.Object({
      mode: Type.String(),
      backend: Type.String(),
      nrServers: Type.Integer(),
    }),
    iommu: Type.Object({
      backend: Type.String(),
      smmus: Type.Array(
        Type.Object({
          name: Type.String(),
          sidBits: Type.Integer(),
          ssidBits: Type.Integer(),
          pri: Type.Boolean(),
          devices: Type.Array(StreamMappingSchema),
        }),
      ),
    }),
    host: Type.String(),
    placement: Type.Object({ requestedHost: Type.Optional(Type.String()), reason: Type.String() }),
    state: VmStateSchema,
    activeOperation: Type.Optional(Type.String()),
    failure: Type.Optional(
      Type.Object(
        { reason: Type.String(), message: Type.String(), time: Timestamp },
        {
          description:
            "why the VM is FAILED when no operation says it (DEVICES_VANISHED: its host no longer holds its devices)",
        },
      ),
    ),
    resolved: Type.Object({
      interruptController: Type.Optional(BackendChoiceSchema),
      iommu: Type.Optional(BackendChoiceSchema),
    }),
    guestMemoryPath: Type.String({
      description: "guest RAM file, relative to the host services' data folder",
    }),
    createTime: Timestamp,
    updateTime: Timestamp,
  },
  { title: "Vm" },
);

export type VmSpec = Static<typeof VmSpecSchema>;
export type Vm = Static<typeof VmSchema>;
export type VmState = Static<typeof VmStateSchema>;
export type BackendChoice = Static<typeof BackendChoiceSchema>;
export type RequestedBackend = Static<typeof RequestedBackendSchema>;
