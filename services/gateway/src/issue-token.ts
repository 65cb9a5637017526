#!/usr/bin/env node
// Issues a bearer token into the gateway's tokens file (only its salted hash is written) and
// prints the token once. The running gateway picks it up without a restart.
//   node services/gateway/dist/src/issue-token.js --tenant acme --role operator [--tokens-file F] [--description D]
//   node services/gateway/dist/src/issue-token.js --role host --host h1   (a host's own credential)
// Without --tokens-file: tokens.json in VPLANE_DATA_DIR (default ./data), as the gateway finds it.
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { AccessTokens, ROLES, type Role } from "./access/access-tokens.js";
import { resolveGatewayPaths } from "./gateway.js";

try {
  const { values } = parseArgs({
    options: {
      tenant: { type: "string" },
      role: { type: "string" },
      "tokens-file": { type: "string" },
      description: { type: "string" },
      host: { type: "string" },
    },
    strict: true,
  });
  // A host credential belongs to no tenant's VMs; its entry names the operators' tenant "system".
  if (values.role === "host") values.tenant ??= "system";
  if (!values.tenant || !values.role) throw new Error("--tenant and --role are required");
  if (!ROLES.includes(values.role as Role)) throw new Error(`--role must be one of ${ROLES.join(", ")}`);
  const path =
    values["tokens-file"] ??
    resolveGatewayPaths({
      dataDir: process.env.VPLANE_DATA_DIR || "./data",
      registryUrl: "",
      tokensFile: process.env.VPLANE_TOKENS_FILE ?? "",
    }).tokensFile;
  const tokens = existsSync(path) ? AccessTokens.open(path) : AccessTokens.inMemoryAt(path);
  const { token, entry } = tokens.issue({
    tenant: values.tenant,
    role: values.role as Role,
    ...(values.description ? { description: values.description } : {}),
    ...(values.host ? { host: values.host } : {}),
  });
  tokens.save();
  process.stderr.write(
    `issued token ${entry.id} (tenant ${entry.tenant}, role ${entry.role}${entry.host ? `, host ${entry.host}` : ""}) into ${path}\n`,
  );
  process.stdout.write(`${token}\n`);
} catch (error) {
  process.stderr.write(`issue-token: ${(error as Error).message}\n`);
  process.exit(2);
}
