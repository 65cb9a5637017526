import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { openStore, type Store } from "@vplane/store";
import { dataDirOption, option } from "./options.js";

/**
 * Where a device service keeps its configuration: the host's data folder (which also anchors
 * relative guest RAM paths) and a store, by default the SQLite file `file` in that folder. Gives
 * the two options (VPLANE_DATA_DIR, VPLANE_<prefix>_STORE_URL) and the opener that reads them.
 */
export function configStore(prefix: string, file: string) {
  return {
    options: {
      dataDir: dataDirOption(
        "data folder: the embedded configuration database and relative guest RAM paths live here",
      ),
      storeUrl: option.string({
        env: `VPLANE_${prefix}_STORE_URL`,
        flag: "store-url",
        doc: `configuration store URL (sqlite:///abs/path.db or etcd://...); unset: ${file} in the data folder`,
        default: "",
      }),
    },
    /** The absolute data folder (created) and the store the options name. */
    open(config: { dataDir: string; storeUrl: string }): { dataDir: string; store: Store } {
      const dataDir = resolve(config.dataDir);
      mkdirSync(dataDir, { recursive: true });
      return { dataDir, store: openStore(config.storeUrl || `sqlite://${resolve(dataDir, file)}`) };
    },
  };
}
