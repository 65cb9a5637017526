import { readFileSync } from "node:fs";

/** Producer version of this vplane build (the workspace version), reported in capabilities. */
export const VPLANE_VERSION: string = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
).version;
