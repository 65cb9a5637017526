import { REPORT_PREFIX } from "./serial-protocol.js";

/**
 * Writes one report from inside the guest (its Node entry imports this, bundled). BigInts are
 * written as decimal strings, since JSON has no 64-bit integers. Runs on Node 20.
 */
export function report(kind: string, payload: unknown): void {
  const json = JSON.stringify(payload, (_key, value: unknown) =>
    typeof value === "bigint" ? value.toString() : value,
  );
  process.stdout.write(`${REPORT_PREFIX}${kind} ${json}\n`);
}
