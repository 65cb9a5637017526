import { spawn } from "node:child_process";
import { parseReportLine, type GuestReport } from "./serial-protocol.js";

export interface BootOptions {
  /** The QEMU binary. */
  qemu: string;
  /** Its whole command line (the machine, the kernel, the initrd, `-serial stdio`, ...). */
  args: string[];
  /** From spawn to the end report; past it QEMU is ended by its PID. */
  timeoutMs: number;
}

export interface BootResult {
  reports: GuestReport[];
  /** The guest's end status (the payload of its "end" report), or undefined if it never ended. */
  endStatus: number | undefined;
  /** Why the boot did not end normally (timeout, QEMU's own exit), if it did not. */
  failure: string | undefined;
  /** Every console line, for the log of a failed run. */
  console: string[];
  durationMs: number;
}

/**
 * Boots a guest whose serial console is QEMU's stdout and collects its reports until the end
 * report, QEMU's exit or the timeout. QEMU is ended by its own PID (SIGTERM, then SIGKILL a
 * second later if it is still there), never by name.
 */
export function bootGuest(options: BootOptions): Promise<BootResult> {
  const started = Date.now();
  const child = spawn(options.qemu, options.args, { stdio: ["ignore", "pipe", "pipe"] });
  const reports: GuestReport[] = [];
  const lines: string[] = [];
  let endStatus: number | undefined;
  let failure: string | undefined;
  let pending = "";
  return new Promise((resolve) => {
    const stop = (why?: string) => {
      failure ??= why;
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        process.kill(child.pid, "SIGTERM");
        setTimeout(() => {
          if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, "SIGKILL");
        }, 1000).unref();
      }
    };
    const timer = setTimeout(() => stop(`no end report within ${options.timeoutMs} ms`), options.timeoutMs);
    const onLine = (line: string) => {
      lines.push(line);
      const report = parseReportLine(line);
      if (!report) return;
      reports.push(report);
      if (report.kind === "end") {
        endStatus = Number(report.payload);
        stop();
      }
    };
    // Decoded as one stream: a UTF-8 character split between two reads stays whole.
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      pending += chunk.replaceAll("\r", "");
      const parts = pending.split("\n");
      pending = parts.pop() ?? "";
      for (const line of parts) onLine(line);
    });
    child.stderr.on("data", (chunk: string) => lines.push(`[qemu stderr] ${chunk.trimEnd()}`));
    child.on("error", (error) => stop(`QEMU did not start: ${error.message}`));
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (pending) onLine(pending);
      if (endStatus === undefined) failure ??= `QEMU exited (${signal ?? code}) before the end report`;
      resolve({ reports, endStatus, failure, console: lines, durationMs: Date.now() - started });
    });
  });
}
