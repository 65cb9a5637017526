export { ApiClient, ApiError, type ApiErrorBody, type ServerSentEvent } from "./api-client.js";
export { parseByteSize } from "./byte-size.js";
export { buildParser, runCli } from "./cli.js";
export { resolveConfig, type CliConfig, type OutputFormat } from "./cli-config.js";
export type { CliIo } from "./command-context.js";
export { formatTable } from "./output.js";
