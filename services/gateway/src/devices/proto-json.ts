import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import {
  createFileRegistry,
  fromBinary,
  fromJson,
  toBinary,
  toJson,
  type DescField,
  type DescMessage,
  type DescMethod,
  type FileRegistry,
} from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { Type, type TSchema } from "@sinclair/typebox";
import { VplaneError } from "@vplane/service-kit";
import { StringEnum } from "../schemas/string-enum.js";

/**
 * The proto3 JSON mapping of vplane's messages, driven by the descriptor set @vplane/proto ships
 * (the same mapping grpc-gateway applies): REST bodies become request bytes, response bytes
 * become JSON (64-bit integers as decimal strings, enums by name, every field present), and each
 * message has a TypeBox schema that validates the body and documents it in OpenAPI.
 */
export class ProtoJson {
  private readonly registry: FileRegistry;
  private readonly schemas = new Map<string, TSchema>();

  constructor(descriptorSet: Uint8Array = readDescriptorSet()) {
    this.registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, descriptorSet));
  }

  /** The method `service/method`, e.g. ("vplane.iommu.v1.IommuService", "Translate"). */
  method(service: string, method: string): DescMethod {
    const found = this.registry.getService(service)?.methods.find((m) => m.name === method);
    if (!found) throw new Error(`${service}/${method} is not in the descriptor set`);
    return found;
  }

  hasMethod(service: string, method: string): boolean {
    return this.registry.getService(service)?.methods.some((m) => m.name === method) ?? false;
  }

  /** Encodes a request from its JSON form; a value the mapping rejects is INVALID_ARGUMENT. */
  encode(desc: DescMessage, json: Record<string, unknown>): Buffer {
    try {
      return Buffer.from(toBinary(desc, fromJson(desc, json as never)));
    } catch (error) {
      throw new VplaneError({
        code: "INVALID_ARGUMENT",
        reason: "BAD_FIELD_VALUE",
        message: (error as Error).message,
      });
    }
  }

  decode(desc: DescMessage, bytes: Uint8Array): Record<string, unknown> {
    return toJson(desc, fromBinary(desc, bytes), { alwaysEmitImplicit: true }) as Record<string, unknown>;
  }

  /** The JSON body schema of `desc`, without the fields the gateway fills in (`omit`). */
  schemaOf(desc: DescMessage, omit: readonly string[] = []): TSchema {
    const properties: Record<string, TSchema> = {};
    for (const field of desc.fields) {
      if (omit.includes(field.name)) continue;
      properties[field.jsonName] = Type.Optional(this.fieldSchema(field, 0));
    }
    return Type.Object(properties, { additionalProperties: false, title: desc.name });
  }

  private messageSchema(desc: DescMessage, depth: number): TSchema {
    switch (desc.typeName) {
      case "google.protobuf.Timestamp":
        return Type.String({ format: "date-time" });
      case "google.protobuf.Duration":
        return Type.String({ pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$" });
      case "google.protobuf.Empty":
        return Type.Object({}, { additionalProperties: false });
    }
    if (depth > 8) return Type.Unknown();
    const cached = depth === 0 ? undefined : this.schemas.get(desc.typeName);
    if (cached) return cached;
    const properties: Record<string, TSchema> = {};
    for (const field of desc.fields)
      properties[field.jsonName] = Type.Optional(this.fieldSchema(field, depth + 1));
    const schema = Type.Object(properties, { additionalProperties: false, title: desc.name });
    this.schemas.set(desc.typeName, schema);
    return schema;
  }

  private fieldSchema(field: DescField, depth: number): TSchema {
    switch (field.fieldKind) {
      case "scalar":
        return scalarSchema(field.scalar);
      case "enum":
        return StringEnum(field.enum.values.map((v) => v.name));
      case "message":
        return this.messageSchema(field.message, depth);
      case "list":
        return Type.Array(
          field.listKind === "message"
            ? this.messageSchema(field.message, depth)
            : field.listKind === "enum"
              ? StringEnum(field.enum.values.map((v) => v.name))
              : scalarSchema(field.scalar),
        );
      case "map":
        return Type.Record(
          Type.String(),
          field.mapKind === "message"
            ? this.messageSchema(field.message, depth)
            : field.mapKind === "enum"
              ? StringEnum(field.enum.values.map((v) => v.name))
              : scalarSchema(field.scalar),
        );
    }
  }
}

// ScalarType numbers from google/protobuf/descriptor.proto (FieldDescriptorProto.Type).
function scalarSchema(scalar: number): TSchema {
  switch (scalar) {
    case 1: // double
    case 2: // float
      return Type.Number();
    case 8: // bool
      return Type.Boolean();
    case 9: // string
      return Type.String();
    case 12: // bytes
      return Type.String({ contentEncoding: "base64", description: "base64" });
    case 13: // uint32
    case 7: // fixed32
      return Type.Integer({ minimum: 0, maximum: 0xffffffff });
    case 5: // int32
    case 15: // sfixed32
    case 17: // sint32
      return Type.Integer({ minimum: -0x80000000, maximum: 0x7fffffff });
    case 4: // uint64
    case 6: // fixed64
      return Type.Union([Type.String({ pattern: "^[0-9]{1,20}$" }), Type.Integer({ minimum: 0 })], {
        description: "64-bit: a decimal string (or a JSON integer below 2^53)",
      });
    default: // int64, sfixed64, sint64
      return Type.Union([Type.String({ pattern: "^-?[0-9]{1,19}$" }), Type.Integer()], {
        description: "64-bit: a decimal string (or a JSON integer within ±2^53)",
      });
  }
}

function readDescriptorSet(): Uint8Array {
  const require = createRequire(import.meta.url);
  return readFileSync(require.resolve("@vplane/proto/descriptor-set.binpb"));
}
