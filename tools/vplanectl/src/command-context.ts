import { ApiClient } from "./api-client.js";
import { resolveConfig, type CliConfig } from "./cli-config.js";
import { columnsOf, render, type Column } from "./output.js";

export interface CliIo {
  env: NodeJS.ProcessEnv;
  stdout: NodeJS.WriteStream | { write(text: string): unknown; isTTY?: boolean };
  stderr: NodeJS.WriteStream | { write(text: string): unknown; isTTY?: boolean };
}

/** What a command's handler works with: the API client, the settings and the output. */
export class CommandContext {
  readonly config: CliConfig;
  readonly api: ApiClient;

  /** `flags`: a handler's parsed arguments, of which the global options are read. */
  constructor(
    flags: object,
    readonly io: CliIo,
  ) {
    this.config = resolveConfig(flags, io.env);
    this.api = new ApiClient(this.config.url, this.config.token);
  }

  /** `data` as JSON or YAML, or `rows` as a table. */
  print<T>(data: unknown, rows: readonly T[], columns: readonly Column<T>[]): void {
    this.io.stdout.write(render(this.config.output, data, rows, columns));
  }

  /**
   * An answer without a table of its own: one row of its fields, or of the one message it wraps
   * (`{"controller": {...}}`); an empty answer prints nothing as a table.
   */
  printAnswer(answer: object): void {
    const fields = Object.values(answer);
    const wrapped = fields.length === 1 && typeof fields[0] === "object" && !Array.isArray(fields[0]);
    const row = (wrapped ? fields[0] : answer) as object;
    if (this.config.output === "table" && Object.keys(row).length === 0) return;
    this.print(answer, [row as never], columnsOf(row));
  }
}

/** Builds a handler's context from its parsed arguments. */
export type ContextFactory = (flags: object) => CommandContext;

/** The Idempotency-Key header, when the caller gave one. */
export function idempotencyHeader(key: string | undefined): Record<string, string> | undefined {
  return key ? { "idempotency-key": key } : undefined;
}
