const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tib: 1024 ** 4,
};

/** "512MiB", "4G", "1048576" → bytes (binary units, as QEMU's -m reads them). */
export function parseByteSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(text.trim());
  const unit = UNITS[match?.[2]?.toLowerCase() ?? "x"];
  if (!match || unit === undefined) throw new Error(`'${text}' is not a size (e.g. 512MiB, 4GiB)`);
  const bytes = Number(match[1]) * unit;
  if (!Number.isSafeInteger(bytes)) throw new Error(`'${text}' is not a whole number of bytes`);
  return bytes;
}
