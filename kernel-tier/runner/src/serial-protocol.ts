/**
 * What a guest tells the host over its serial console: one line per report,
 * `@@vplane <kind> <payload>`, the payload JSON on one line (written by the guest's init script
 * and by its Node entry); `@@vplane end <exit status>` is the last. Everything else on the console
 * (the kernel's messages) is kept for the log of a failed run, not parsed.
 */
export const REPORT_PREFIX = "@@vplane ";

export interface GuestReport {
  kind: string;
  payload: unknown;
}

/** The report a console line carries, if it carries one (a payload that is not JSON stays text). */
export function parseReportLine(line: string): GuestReport | undefined {
  const at = line.indexOf(REPORT_PREFIX);
  if (at < 0) return undefined;
  const rest = line.slice(at + REPORT_PREFIX.length).trimEnd();
  const space = rest.indexOf(" ");
  const kind = space < 0 ? rest : rest.slice(0, space);
  const text = space < 0 ? "" : rest.slice(space + 1);
  try {
    return { kind, payload: JSON.parse(text) as unknown };
  } catch {
    return { kind, payload: text };
  }
}
