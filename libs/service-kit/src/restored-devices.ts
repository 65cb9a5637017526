import type { Store } from "@vplane/store";
import type { Logger } from "./logger.js";

/** A device service's registry: its devices rebuilt from the store on start, all closed at stop. */
export interface DeviceRegistry {
  load(): Promise<void>;
  closeAll(): void;
}

/** How a device service logs its VMM handoff socket's events: refusals as warnings, the rest as info. */
export function handoffEventLog(log: Logger): (event: { event: string }) => void {
  return (event) =>
    event.event === "refused" ? log.warn(event, "VMM handoff refused") : log.info(event, "VMM handoff");
}

/**
 * Rebuilds a device service's devices (`registry.load()`) beside what it opened for them: its
 * store and, when configured, its VMM handoff socket. A failed rebuild closes both and rethrows
 * (the service does not start). Answers the service's close: the devices, the socket, the store.
 */
export async function restoreDevices(
  registry: DeviceRegistry,
  opened: { store: Store; handoff: { close(): void } | undefined },
): Promise<() => Promise<void>> {
  const closeOpened = async () => {
    opened.handoff?.close();
    await opened.store.close();
  };
  try {
    await registry.load();
  } catch (error) {
    await closeOpened();
    throw error;
  }
  return async () => {
    registry.closeAll();
    await closeOpened();
  };
}
