// A VMM's side of the handoff (docs/vmm-handoff.md): the shared client of libs/host-kernel.
export {
  nextHandoffMessage as nextFromService,
  sendHandoffMessage as sendToService,
} from "@vplane/host-kernel";
