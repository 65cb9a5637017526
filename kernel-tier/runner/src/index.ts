export { bundleGuestEntry } from "./guest-bundle.js";
export { InitramfsTree, strippedNodeBinary } from "./initramfs.js";
export { bootGuest, type BootOptions, type BootResult } from "./qemu-boot.js";
export { REPORT_PREFIX, parseReportLine, type GuestReport } from "./serial-protocol.js";
export { findArtefacts, tierCache, tierSkipReason, type ArtefactsLookup } from "./tier-artefacts.js";
