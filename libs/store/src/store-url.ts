// Where a store lives, written as one URL (for a flag or an environment variable):
//   sqlite:///abs/path/registry.db          embedded SQLite file (absolute path)
//   sqlite::memory:                         private in-memory SQLite (tests)
//   etcd://host:2379,host2:2379/prefix      etcd cluster members (plain http), keys under "prefix/"

import { isAbsolute } from "node:path";
import { EtcdStore } from "./etcd-store.js";
import { SqliteStore } from "./sqlite-store.js";
import { StoreInvalidArgumentError } from "./store-error.js";
import type { Store } from "./store.js";

export type StoreLocation =
  { kind: "sqlite"; path: string } | { kind: "etcd"; endpoints: string[]; prefix: string };

const URL_FORMS = "sqlite:///absolute/path.db, sqlite::memory:, or etcd://host:port[,host:port...][/prefix]";
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
    const rest = url.slice("etcd://".length);
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
    return { kind: "etcd", endpoints, prefix };
  }
  throw bad("has an unknown scheme");
}

/** Opens the store `url` names (see parseStoreUrl). Throws StoreInvalidArgumentError on a bad URL. */
export function openStore(url: string): Store {
  const location = parseStoreUrl(url);
  switch (location.kind) {
    case "sqlite":
      return new SqliteStore(location.path);
    case "etcd":
      return new EtcdStore({ endpoints: location.endpoints, prefix: location.prefix });
  }
}
