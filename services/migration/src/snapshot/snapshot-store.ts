// Snapshots on this host: one file per snapshot under {data}/snapshots/{id}.vpsnap, written to a
// temporary file, flushed and renamed, so a crash leaves the old snapshot or the new one whole.
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import type { SnapshotBody } from "@vplane/proto/gen/vplane/migration/v1/snapshot_format";
import type { Snapshot } from "@vplane/proto/gen/vplane/migration/v1/snapshot";
import { VplaneError } from "@vplane/service-kit";
import {
  SNAPSHOT_FORMAT_VERSION,
  checkSnapshotSize,
  decodeSnapshot,
  encodeSnapshot,
} from "./snapshot-codec.js";

const SUFFIX = ".vpsnap";

export class SnapshotStore {
  private readonly dir: string;

  constructor(
    dataDir: string,
    private readonly maxBytes: number,
  ) {
    this.dir = join(dataDir, "snapshots");
    mkdirSync(this.dir, { recursive: true });
  }

  /** Writes a new snapshot; ALREADY_EXISTS if the id is taken. */
  save(id: string, body: SnapshotBody): Snapshot {
    const path = this.pathOf(id);
    if (this.exists(id)) {
      throw new VplaneError({
        code: "ALREADY_EXISTS",
        reason: "SNAPSHOT_EXISTS",
        field: "snapshot_id",
        message: `snapshots/${id} already exists`,
      });
    }
    const encoded = encodeSnapshot(body, this.maxBytes);
    const temporary = `${path}.tmp-${process.pid}`;
    const fd = openSync(temporary, "w", 0o600);
    try {
      writeSync(fd, encoded);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
    return describe(id, body, encoded.length);
  }

  /** The decoded snapshot; NOT_FOUND, or the codec's refusal for damaged data. */
  load(id: string): { body: SnapshotBody; snapshot: Snapshot } {
    const path = this.pathOf(id);
    let size: number;
    try {
      size = statSync(path).size;
    } catch {
      throw notFound(id);
    }
    // Refuse an oversized file before reading it into memory.
    checkSnapshotSize(size, this.maxBytes);
    const body = decodeSnapshot(readFileSync(path), this.maxBytes);
    return { body, snapshot: describe(id, body, size) };
  }

  delete(id: string): void {
    if (!this.exists(id)) throw notFound(id);
    rmSync(this.pathOf(id));
  }

  /** Snapshot ids, ascending. */
  ids(): string[] {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith(SUFFIX))
      .map((f) => f.slice(0, -SUFFIX.length))
      .sort();
  }

  /** Where the snapshot's file is (tests damage it there). */
  pathOf(id: string): string {
    return join(this.dir, `${id}${SUFFIX}`);
  }

  private exists(id: string): boolean {
    try {
      statSync(this.pathOf(id));
      return true;
    } catch {
      return false;
    }
  }
}

function describe(id: string, body: SnapshotBody, size: number): Snapshot {
  return {
    name: `snapshots/${id}`,
    vm: body.vm,
    sizeBytes: BigInt(size),
    formatVersion: SNAPSHOT_FORMAT_VERSION,
    producerVersion: body.producerVersion,
    sections: body.sections.map((s) => `${s.kind} ${s.device}`),
    createTime: new Date(Number(body.createTimeMs)),
  };
}

function notFound(id: string) {
  return new VplaneError({
    code: "NOT_FOUND",
    reason: "SNAPSHOT_NOT_FOUND",
    message: `snapshots/${id} does not exist`,
  });
}
