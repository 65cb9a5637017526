import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export const OUTPUT_FORMATS = ["table", "json", "yaml"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Where vplanectl talks to and how it prints. */
export interface CliConfig {
  /** Gateway base URL, e.g. http://127.0.0.1:8080. */
  url: string;
  /** Bearer token (vpl_...). */
  token: string;
  output: OutputFormat;
}

export class UsageError extends Error {}

/** The default config file: $XDG_CONFIG_HOME/vplane/config.json, else ~/.config/vplane/config.json. */
export function defaultConfigPath(env: NodeJS.ProcessEnv): string {
  return join(env.XDG_CONFIG_HOME || join(homedir(), ".config"), "vplane", "config.json");
}

/**
 * Resolves the configuration: each setting from its flag, else its environment variable
 * (VPLANE_URL, VPLANE_TOKEN, VPLANE_OUTPUT), else the config file (--config, VPLANE_CONFIG or the
 * default path; JSON {"url", "token", "output"}), else the default (http://127.0.0.1:8080, table).
 */
export function resolveConfig(
  flags: {
    url?: string | undefined;
    token?: string | undefined;
    output?: string | undefined;
    config?: string | undefined;
  },
  env: NodeJS.ProcessEnv,
): CliConfig {
  const explicitPath = flags.config ?? env.VPLANE_CONFIG;
  const path = explicitPath ?? defaultConfigPath(env);
  let file: Partial<Record<keyof CliConfig, unknown>> = {};
  try {
    file = JSON.parse(readFileSync(path, "utf8")) as typeof file;
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
    if (!missing || explicitPath) throw new UsageError(`config file ${path}: ${(error as Error).message}`);
  }
  const pick = (flag: string | undefined, variable: string | undefined, fromFile: unknown) =>
    flag ?? (variable || undefined) ?? (typeof fromFile === "string" ? fromFile : undefined);
  const output = pick(flags.output, env.VPLANE_OUTPUT, file.output) ?? "table";
  if (!(OUTPUT_FORMATS as readonly string[]).includes(output))
    throw new UsageError(`--output must be ${OUTPUT_FORMATS.join(", ")}, not '${output}'`);
  const url = (pick(flags.url, env.VPLANE_URL, file.url) ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
  if (!/^https?:\/\//.test(url))
    throw new UsageError(`--url must start with http:// or https://, not '${url}'`);
  return {
    url,
    token: pick(flags.token, env.VPLANE_TOKEN, file.token) ?? "",
    output: output as OutputFormat,
  };
}
