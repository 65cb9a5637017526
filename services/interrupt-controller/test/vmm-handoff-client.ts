// A VMM's side of the handoff protocol (docs/vmm-handoff.md), for the tests: the shared client.
export { nextHandoffMessage as nextFrame, sendHandoffMessage as sendFrame } from "@vplane/host-kernel";
