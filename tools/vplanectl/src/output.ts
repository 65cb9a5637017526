import { stringify } from "yaml";
import type { OutputFormat } from "./cli-config.js";

export type Column<T> = [header: string, value: (row: T) => unknown];

function cell(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value) ?? "";
}

/** Rows as an aligned plain-text table (like kubectl's default output). */
export function formatTable<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const cells = rows.map((row) => columns.map(([, value]) => cell(value(row))));
  const widths = columns.map(([header], i) => Math.max(header.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(columns.map(([header]) => header)), ...cells.map(line)].join("\n") + "\n";
}

/** Columns named after a row's own keys, for answers without a table of their own. */
export function columnsOf(row: object): Column<never>[] {
  return Object.keys(row).map(
    (key) => [key.toUpperCase(), (r: Record<string, unknown>) => r[key]] as Column<never>,
  );
}

/** Prints `data` as JSON or YAML, or as a table of `rows` with `columns`. */
export function render<T>(
  format: OutputFormat,
  data: unknown,
  rows: readonly T[],
  columns: readonly Column<T>[],
): string {
  if (format === "json") return `${JSON.stringify(data, null, 2)}\n`;
  if (format === "yaml") return stringify(data);
  return formatTable(rows, columns);
}
