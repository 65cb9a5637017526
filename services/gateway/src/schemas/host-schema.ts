import { Type, type Static } from "@sinclair/typebox";
import { ResourceId, Timestamp } from "./resource-id.js";
import { StringEnum } from "./string-enum.js";

const GrpcAddress = (service: string) =>
  Type.String({
    pattern: "^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$",
    maxLength: 300,
    description: `${service} gRPC address, host:port`,
  });

export const HostAddressesSchema = Type.Object(
  {
    interruptController: GrpcAddress("interrupt-controller"),
    iommu: GrpcAddress("iommu"),
    migration: GrpcAddress("migration"),
  },
  { additionalProperties: false },
);

export const HostCapacitySchema = Type.Object(
  {
    vcpus: Type.Integer({
      minimum: 0,
      maximum: 1_000_000,
      description: "vCPUs the host may run; 0: no limit",
    }),
    memoryBytes: Type.Integer({
      minimum: 0,
      maximum: 2 ** 53 - 1,
      description: "guest RAM the host may hold, bytes; 0: no limit",
    }),
    vms: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 1_000_000,
        description:
          "VMs the host may hold (its interrupt-controller's max_controllers); 0 or unset: no limit",
      }),
    ),
    smmus: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 1_000_000,
        description:
          "SMMUs the host may hold, over all its VMs (its iommu's max_smmus); 0 or unset: no limit",
      }),
    ),
  },
  { additionalProperties: false },
);

/**
 * What a host's agent declares when it joins and at each heartbeat (POST /v1/hosts/{host}:join):
 * where its services listen and what it may hold. Every capacity is declared, none is 0.
 */
export const HostJoinSchema = Type.Object(
  {
    addresses: HostAddressesSchema,
    capacity: Type.Object(
      {
        vcpus: Type.Integer({ minimum: 1, maximum: 1_000_000, description: "vCPUs the host may run" }),
        memoryBytes: Type.Integer({
          minimum: 1024 * 1024,
          maximum: 2 ** 53 - 1,
          description: "guest RAM the host may hold, bytes",
        }),
        vms: Type.Integer({
          minimum: 1,
          maximum: 1_000_000,
          description: "VMs the host may hold (its interrupt-controller's max_controllers)",
        }),
        smmus: Type.Integer({
          minimum: 1,
          maximum: 1_000_000,
          description: "SMMUs the host may hold, over all its VMs (its iommu's max_smmus)",
        }),
      },
      { additionalProperties: false },
    ),
    agentVersion: Type.String({ maxLength: 100, description: "the agent's version" }),
  },
  { additionalProperties: false },
);

export const HostAvailabilitySchema = Type.Object(
  {
    state: StringEnum(["AVAILABLE", "UNAVAILABLE"], {
      description: "UNAVAILABLE: placement gives the host no new VMs",
    }),
    reason: Type.Optional(
      StringEnum(["LEASE_EXPIRED", "SERVICES_NOT_SERVING"], {
        description:
          "LEASE_EXPIRED: a joined host's agent stopped refreshing; SERVICES_NOT_SERVING: a service did not answer SERVING",
      }),
    ),
    message: Type.Optional(Type.String()),
  },
  { title: "HostAvailability" },
);

/** What an admin sends to register a host. */
export const HostSpecSchema = Type.Object(
  {
    name: ResourceId("host id, chosen by the caller"),
    addresses: HostAddressesSchema,
    capacity: Type.Optional(HostCapacitySchema),
  },
  { additionalProperties: false },
);

/** A host as the registry keeps it. */
export const HostRecordSchema = Type.Object({
  name: Type.String(),
  addresses: HostAddressesSchema,
  capacity: HostCapacitySchema,
  /** "api": registered by an admin; "config": from the gateway's environment; "agent": joined by itself. */
  source: StringEnum(["api", "config", "agent"]),
  createTime: Timestamp,
});

export const BackendAvailabilitySchema = Type.Object({
  backend: StringEnum(["emulated", "native", "unspecified"]),
  available: Type.Boolean(),
  unavailableReason: Type.Optional(Type.String()),
  unavailableCode: Type.Optional(Type.String()),
});

export const ServiceStatusSchema = Type.Object({
  address: Type.String(),
  health: StringEnum(["SERVING", "NOT_SERVING", "UNREACHABLE"], {
    description: "grpc.health.v1 answer, or UNREACHABLE when there was none in time",
  }),
  version: Type.Optional(Type.String()),
  backends: Type.Optional(Type.Array(BackendAvailabilitySchema)),
  limits: Type.Optional(Type.Record(Type.String(), Type.Number())),
  error: Type.Optional(Type.Object({ code: Type.String(), reason: Type.String(), message: Type.String() })),
});

/**
 * A host as the API shows it: the record, its usage and what its services say right now. Admins
 * see it all; other roles see no addresses or services, and only their own tenant's usage.
 */
export const HostSchema = Type.Object(
  {
    ...HostRecordSchema.properties,
    addresses: Type.Optional(
      Type.Object(HostAddressesSchema.properties, { description: "the host's services (admins only)" }),
    ),
    usage: Type.Object(
      {
        vcpus: Type.Integer(),
        memoryBytes: Type.Integer(),
        vms: Type.Integer(),
        smmus: Type.Optional(Type.Integer({ description: "SMMUs of the VMs counted in vms" })),
      },
      {
        description:
          "what VMs placed on the host take: every tenant's for admins, only the caller's tenant's for other roles",
      },
    ),
    availability: Type.Optional(HostAvailabilitySchema),
    lease: Type.Optional(
      Type.Object(
        { renewTime: Timestamp, expireTime: Timestamp, agentVersion: Type.String() },
        {
          description:
            "a joined host's lease: its agent's last heartbeat and when it lapses without another (admins only)",
        },
      ),
    ),
    services: Type.Optional(
      Type.Object(
        {
          interruptController: ServiceStatusSchema,
          iommu: ServiceStatusSchema,
          migration: ServiceStatusSchema,
        },
        { description: "each service's health and capabilities, asked now (GET of one host, admins only)" },
      ),
    ),
  },
  { title: "Host" },
);

export type HostSpec = Static<typeof HostSpecSchema>;
export type HostJoin = Static<typeof HostJoinSchema>;
export type HostAvailability = Static<typeof HostAvailabilitySchema>;
export type HostRecord = Static<typeof HostRecordSchema>;
export type HostAddresses = Static<typeof HostAddressesSchema>;
export type ServiceStatus = Static<typeof ServiceStatusSchema>;
export type BackendAvailabilityView = Static<typeof BackendAvailabilitySchema>;
export type Host = Static<typeof HostSchema>;
