import type { OptionSpec } from "./config.js";

type Base = Omit<OptionSpec<never>, "parse" | "default">;

/** Option parsers: each says in its error what it expected. */
export const option = {
  string(o: Base & { default: string }): OptionSpec<string> {
    return { ...o, parse: (raw) => raw };
  },

  /** An integer in [min, max]. */
  integer(o: Base & { default: number; min: number; max: number }): OptionSpec<number> {
    return {
      ...o,
      parse(raw) {
        const n = Number(raw);
        if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < o.min || n > o.max) {
          throw new Error(`is not an integer between ${o.min} and ${o.max}`);
        }
        return n;
      },
    };
  },

  /** One of a fixed set of words. */
  oneOf<T extends string>(o: Base & { default: T; values: readonly T[] }): OptionSpec<T> {
    return {
      ...o,
      parse(raw) {
        if (!(o.values as readonly string[]).includes(raw))
          throw new Error(`is not one of ${o.values.join(", ")}`);
        return raw as T;
      },
    };
  },

  boolean(o: Base & { default: boolean }): OptionSpec<boolean> {
    return {
      ...o,
      parse(raw) {
        if (["true", "1", "yes"].includes(raw)) return true;
        if (["false", "0", "no"].includes(raw)) return false;
        throw new Error("is not true or false");
      },
    };
  },

  /** host:port where port is 0..65535 (0 picks a free port); IPv6 hosts in brackets. */
  listenAddress(o: Base & { default: string }): OptionSpec<string> {
    return {
      ...o,
      parse(raw) {
        const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(raw);
        if (!match || Number(match[2]) > 65535) throw new Error("is not host:port (e.g. 127.0.0.1:50051)");
        return raw;
      },
    };
  },
};

/**
 * VPLANE_DATA_DIR / --data-dir (default ./data): the one data folder every vplane process of a
 * host uses; `doc` says what this process keeps there.
 */
export function dataDirOption(doc: string): OptionSpec<string> {
  return option.string({ env: "VPLANE_DATA_DIR", flag: "data-dir", doc, default: "./data" });
}

/** VPLANE_LOG_LEVEL / --log-level (default info): every vplane process's pino level. */
export function logLevelOption() {
  return option.oneOf({
    env: "VPLANE_LOG_LEVEL",
    flag: "log-level",
    doc: "pino log level",
    default: "info",
    values: ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const,
  });
}

/**
 * VPLANE_SHUTDOWN_GRACE_MS / --shutdown-grace-ms (default 10 s): how long a process drains on
 * SIGTERM; `doc` says what it drains.
 */
export function shutdownGraceOption(doc: string): OptionSpec<number> {
  return option.integer({
    env: "VPLANE_SHUTDOWN_GRACE_MS",
    flag: "shutdown-grace-ms",
    doc,
    default: 10_000,
    min: 0,
    max: 600_000,
  });
}
