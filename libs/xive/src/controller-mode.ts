/** The interrupt controller a VM is created with: XIVE, XICS, or DUAL (the guest picks at CAS). */
export type ControllerMode = "XIVE" | "XICS" | "DUAL";
/** The device a controller presents now (a DUAL controller switches at CAS). */
export type ActiveMode = "XIVE" | "XICS";
