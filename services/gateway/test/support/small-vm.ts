/** A create's body for the smallest VM (1 vCPU, 1 MiB, XIVE), with `smmus` when given. */
export const smallVm = (name: string, smmus: unknown[] = []) => ({
  name,
  vcpus: 1,
  memoryBytes: 1 << 20,
  interruptController: { mode: "xive" },
  ...(smmus.length ? { iommu: { smmus } } : {}),
});
