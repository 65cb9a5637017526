// Build step: the gateway's OpenAPI document (src/gen/openapi.json) and the TypeScript types of
// its paths and schemas generated from it by openapi-typescript (src/gen/gateway-api.ts), which
// the client in src/ types openapi-fetch with. Needs @vplane/gateway built (turbo builds it first).
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import openapiTS, { astToString } from "openapi-typescript";
import { gatewayOpenApiDocument } from "@vplane/gateway";

const gen = fileURLToPath(new URL("../src/gen/", import.meta.url));
mkdirSync(gen, { recursive: true });
const document = await gatewayOpenApiDocument();
writeFileSync(`${gen}openapi.json`, `${JSON.stringify(document, null, 2)}\n`);
const ast = await openapiTS(document, { exportType: false, alphabetize: false });
writeFileSync(
  `${gen}gateway-api.ts`,
  `// Generated from the gateway's OpenAPI document by openapi-typescript (scripts/generate.mjs); never edited by hand.\n${astToString(ast)}`,
);
