import { Type, type Static } from "@sinclair/typebox";
import { ResourceId, Timestamp } from "./resource-id.js";

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
  },
  { additionalProperties: false },
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
  /** "api": registered by an admin; "config": from the gateway's environment. */
  source: Type.Union([Type.Literal("api"), Type.Literal("config")]),
  createTime: Timestamp,
});

export const BackendAvailabilitySchema = Type.Object({
  backend: Type.Union([Type.Literal("emulated"), Type.Literal("native"), Type.Literal("unspecified")]),
  available: Type.Boolean(),
  unavailableReason: Type.Optional(Type.String()),
  unavailableCode: Type.Optional(Type.String()),
});

export const ServiceStatusSchema = Type.Object({
  address: Type.String(),
  health: Type.Union([Type.Literal("SERVING"), Type.Literal("NOT_SERVING"), Type.Literal("UNREACHABLE")], {
    description: "grpc.health.v1 answer, or UNREACHABLE when there was none in time",
  }),
  version: Type.Optional(Type.String()),
  backends: Type.Optional(Type.Array(BackendAvailabilitySchema)),
  limits: Type.Optional(Type.Record(Type.String(), Type.Number())),
  error: Type.Optional(Type.Object({ code: Type.String(), reason: Type.String(), message: Type.String() })),
});

/** A host as the API shows it: the record, its usage and what its services say right now. */
export const HostSchema = Type.Object(
  {
    ...HostRecordSchema.properties,
    usage: Type.Object({ vcpus: Type.Integer(), memoryBytes: Type.Integer(), vms: Type.Integer() }),
    services: Type.Optional(
      Type.Object({
        interruptController: ServiceStatusSchema,
        iommu: ServiceStatusSchema,
        migration: ServiceStatusSchema,
      }),
    ),
  },
  { title: "Host" },
);

export type HostSpec = Static<typeof HostSpecSchema>;
export type HostRecord = Static<typeof HostRecordSchema>;
export type HostAddresses = Static<typeof HostAddressesSchema>;
export type ServiceStatus = Static<typeof ServiceStatusSchema>;
export type BackendAvailabilityView = Static<typeof BackendAvailabilitySchema>;
export type Host = Static<typeof HostSchema>;
