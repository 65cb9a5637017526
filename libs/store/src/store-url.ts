// Where a store lives, written as one URL (for a flag or an environment variable):
//   sqlite:///abs/path/registry.db          embedded SQLite file (absolute path)
//   sqlite::memory:                         private in-memory SQLite (tests)
//   etcd://host:2379,host2:2379/prefix      etcd cluster members (plain http), keys under "prefix/"
//   etcd://...?callTimeoutMs=2000           the same, each etcd call's deadline (default 5000 ms)

import { isAbsolute } from "node:path";
import { EtcdStore } from "./etcd-store.js";
import { SqliteStore } from "./sqlite-store.js";
import { StoreInvalidArgumentError } from "./store-error.js";
import type { Store } from "./store.js";

export type StoreLocation =
  | { kind: "sqlite"; path: string }
  | { kind: "etcd"; endpoints: string[]; prefix: string; callTimeoutMs?: number };

const URL_FORMS =
  "sqlite:///absolute/path.db, sqlite::memory:, or etcd://host:port[,host:port...][/prefix][?callTimeoutMs=N]";
const HOST_PORT = /^(?<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?<port>\d{1,5})$/;

export function parseStoreUrl(url: string): StoreLocation {
  const bad = (why: string) =>
    new StoreInvalidArgumentError(`store URL '${url}' ${why}; expected ${URL_FORMS}`);
  if (url === "sqlite::memory:") return { kind: "sqlite", path: ":memory:" };
  if (url.startsWith("sqlite:")) {
    if (!url.startsWith("sqlite://")) throw bad("is not a SQLite URL form");
    const path = decodeURIComponent(url.slice("sqlite://".length));
    if (!isAbsolute(path)) throw bad("has a relative path (use three slashes and an absolute path)");
    if (path.endsWith("/")) throw bad("names a directory, not a database file");
    return { kind: "sqlite", path };
  }
  if (url.startsWith("etcd://")) {
    const afterScheme = url.slice("etcd://".length);
    const question = afterScheme.indexOf("?");
    const rest = question === -1 ? afterScheme : afterScheme.slice(0, question);
    const callTimeoutMs = question === -1 ? undefined : etcdCallTimeout(afterScheme.slice(question + 1), bad);
    const slash = rest.indexOf("/");
    const hosts = slash === -1 ? rest : rest.slice(0, slash);
    const path = slash === -1 ? "" : rest.slice(slash + 1);
    const endpoints = hosts.split(",").map((hostPort) => {
      const match = HOST_PORT.exec(hostPort);
      const port = Number(match?.groups?.port);
      if (!match || port < 1 || port > 65535) throw bad(`has '${hostPort}' where host:port belongs`);
      return `http://${hostPort}`;
    });
    const prefix = path === "" || path.endsWith("/") ? path : `${path}/`;
    if (!/^[\x21-\x7e]*$/.test(prefix)) throw bad("has a prefix outside printable ASCII");
    return { kind: "etcd", endpoints, prefix, ...(callTimeoutMs ? { callTimeoutMs } : {}) };
  }
  throw bad("has an unknown scheme");
}

/**
 * The deadline of each etcd call from the URL's query, `callTimeoutMs=N` (1 to 600000): how long
 * a call waits before it is answered unavailable. A write sent through a follower while the
 * leader it knows is dead is never answered: it waits out this deadline, so a cluster that lost
 * its leader stalls writes for about max(this, the election). Too short for the cluster's write
 * latency, and writes fail needlessly (unavailable, retried).
 */
function etcdCallTimeout(query: string, bad: (why: string) => Error): number {
  const match = /^callTimeoutMs=(\d{1,6})$/.exec(query);
  const ms = Number(match?.[1]);
  if (!match || ms < 1 || ms > 600_000) throw bad(`has the query '${query}' (only callTimeoutMs=1..600000)`);
  return ms;
}

/** Opens the store `url` names (see parseStoreUrl). Throws StoreInvalidArgumentError on a bad URL. */
export function openStore(url: string): Store {
  const location = parseStoreUrl(url);
  switch (location.kind) {
    case "sqlite":
      return new SqliteStore(location.path);
    case "etcd":
      return new EtcdStore({
        endpoints: location.endpoints,
        prefix: location.prefix,
        ...(location.callTimeoutMs ? { callTimeoutMs: location.callTimeoutMs } : {}),
      });
  }
}
