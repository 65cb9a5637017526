/**
 * Configuration from flags and environment, validated at start. Every option names its
 * environment variable, its flag, its unit and its default; a bad value is reported with all
 * other bad values in one ConfigError whose message a user can act on (never a stack trace).
 * Precedence: flag, then environment, then default.
 */
export interface OptionSpec<T> {
  /** Environment variable, e.g. "VPLANE_INTERRUPT_ADDR". */
  env: string;
  /** Flag without dashes, e.g. "addr" for --addr. */
  flag: string;
  /** One line: what it is, with its unit. */
  doc: string;
  default: T;
  /** Parses a raw string; throws an Error whose message says what is expected. */
  parse(raw: string): T;
}

export type ConfigSpec = Record<string, OptionSpec<unknown>>;
export type ConfigOf<S extends ConfigSpec> = { [K in keyof S]: S[K] extends OptionSpec<infer T> ? T : never };

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

export interface ConfigSource {
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
}

/** Parses argv (--flag=value or --flag value) and env against the spec. */
export function loadConfig<S extends ConfigSpec>(spec: S, source: ConfigSource): ConfigOf<S> {
  const problems: string[] = [];
  const byFlag = new Map(Object.entries(spec).map(([key, o]) => [o.flag, key]));
  const fromFlags = new Map<string, string>();
  for (let i = 0; i < source.argv.length; i++) {
    const arg = source.argv[i]!;
    const match = /^--([a-z0-9-]+)(?:=(.*))?$/.exec(arg);
    const key = match ? byFlag.get(match[1]!) : undefined;
    if (!match || key === undefined) {
      problems.push(`unknown argument '${arg}' (see --help)`);
      continue;
    }
    const value = match[2] ?? source.argv[++i];
    if (value === undefined) problems.push(`--${match[1]} needs a value`);
    else fromFlags.set(key, value);
  }
  const out: Record<string, unknown> = {};
  for (const [key, option] of Object.entries(spec)) {
    const raw = fromFlags.get(key) ?? source.env[option.env];
    if (raw === undefined || raw === "") {
      out[key] = option.default;
      continue;
    }
    try {
      out[key] = option.parse(raw);
    } catch (error) {
      problems.push(`${option.env} / --${option.flag}: '${raw}' ${(error as Error).message}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out as ConfigOf<S>;
}

/** The --help text of a spec: one line per option with its variable, flag and default. */
export function describeConfig(spec: ConfigSpec): string {
  return Object.values(spec)
    .map(
      (o) => `  --${o.flag.padEnd(22)} ${o.env.padEnd(34)} ${o.doc} (default: ${formatDefault(o.default)})`,
    )
    .join("\n");
}

function formatDefault(value: unknown): string {
  if (value === undefined || value === "") return "unset";
  return typeof value === "string" ? value : JSON.stringify(value);
}
