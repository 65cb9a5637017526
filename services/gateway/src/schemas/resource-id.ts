import { Type } from "@sinclair/typebox";

/** Ids of VMs, hosts, SMMUs and tenants: the services' rule (1-63 lowercase letters, digits, '-', a letter first). */
export const RESOURCE_ID_PATTERN = "^[a-z][a-z0-9-]{0,62}$";

export const ResourceId = (description: string) =>
  Type.String({ pattern: RESOURCE_ID_PATTERN, minLength: 1, maxLength: 63, description });

/** AIP-158 paging query. */
export const PageQuery = Type.Object(
  {
    pageSize: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 1000, description: "1..1000; 0 or unset: 100" }),
    ),
    pageToken: Type.Optional(
      Type.String({ maxLength: 2048, description: "nextPageToken of the previous page" }),
    ),
  },
  { additionalProperties: false },
);

export const Timestamp = Type.String({ format: "date-time", description: "RFC 3339 UTC" });
