// Which VMs' devices this migration service paused (QuiesceDevices) and has not yet resumed,
// released or handed over: one small file per VM under {dataDir}/paused/, written before the
// pause. Operations live in memory, so without it a restart in the middle of a save or a
// migration would leave a VM paused for ever; recoverPausedVms resumes them on start.
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface PausedVm {
  vm: string;
  /** The operation that paused it. */
  operation: string;
  /**
   * "paused": resuming is safe. "committing": a live migration was handing the VM over; whether
   * the destination received the commit is unknown, so resuming could run it twice.
   */
  state: "paused" | "committing";
  sinceMs: number;
}

export class PausedVmJournal {
  private readonly dir: string;

  constructor(dataDir: string) {
    this.dir = join(dataDir, "paused");
  }

  async paused(vm: string, operation: string): Promise<void> {
    await this.write({ vm, operation, state: "paused", sinceMs: Date.now() });
  }

  async committing(vm: string, operation: string): Promise<void> {
    await this.write({ vm, operation, state: "committing", sinceMs: Date.now() });
  }

  /** The VM runs again, was released or handed over, or stays paused on purpose. */
  async cleared(vm: string): Promise<void> {
    await rm(this.path(vm), { force: true });
  }

  /**
   * Undoes a pause after a failed operation: `resume`, then the entry goes. A resume that fails
   * is not rethrown (the operation's own error is the one to report): the entry stays, for a
   * restart to resume the VM.
   */
  async resumeAfterFailure(vm: string, resume: () => Promise<void>): Promise<void> {
    const resumed = await resume().then(
      () => true,
      () => false,
    );
    if (resumed) await this.cleared(vm);
  }

  async entries(): Promise<PausedVm[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const entries: PausedVm[] = [];
    for (const name of names.filter((n) => n.endsWith(".json"))) {
      // An entry cleared since the listing is simply gone.
      const text = await readFile(join(this.dir, name), "utf8").catch((error: NodeJS.ErrnoException) =>
        error.code === "ENOENT" ? undefined : Promise.reject(error),
      );
      if (text !== undefined) entries.push(JSON.parse(text) as PausedVm);
    }
    return entries;
  }

  private path(vm: string): string {
    return join(this.dir, `${vm}.json`);
  }

  /**
   * Written to a temporary file, then renamed over the entry: never half a file. Not synced: it
   * must outlive this process, which the page cache does; a machine that goes down takes the
   * device services' paused state with it, and an fsync here would lengthen the next one's (the
   * destination's import) inside a migration's downtime.
   */
  private async write(entry: PausedVm): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const temporary = `${this.path(entry.vm)}.tmp`;
    await writeFile(temporary, JSON.stringify(entry));
    await rename(temporary, this.path(entry.vm));
  }
}

/**
 * On start: resumes every VM the journal says this service left paused (its operation died with
 * the previous process), retrying while the device services are unreachable, until `signal`.
 * A VM caught committing stays paused, loudly: it may already run on the destination.
 */
export async function recoverPausedVms(
  journal: PausedVmJournal,
  resume: (vm: string) => Promise<void>,
  log: { warn(o: object, m: string): void; error(o: object, m: string): void },
  options: { retryMs: number; signal: AbortSignal },
): Promise<void> {
  let pending = await journal.entries();
  while (pending.length > 0 && !options.signal.aborted) {
    const retry: PausedVm[] = [];
    for (const entry of pending) {
      if (entry.state === "committing") {
        log.error(
          { vm: entry.vm, operation: entry.operation },
          "a live migration stopped while handing this VM over: it stays paused here, as it may run on the destination",
        );
        await journal.cleared(entry.vm);
        continue;
      }
      try {
        await resume(entry.vm);
        log.warn(
          { vm: entry.vm, operation: entry.operation },
          "resumed a VM an interrupted operation left paused",
        );
        await journal.cleared(entry.vm);
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (code === "NOT_FOUND")
          await journal.cleared(entry.vm); // its devices are gone
        else retry.push(entry);
      }
    }
    pending = retry;
    if (pending.length > 0) await new Promise((resolve) => setTimeout(resolve, options.retryMs).unref());
  }
}
