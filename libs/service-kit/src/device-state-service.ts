import type * as pb from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import { DeviceStateServiceService } from "@vplane/proto/gen/vplane/devicestate/v1/service";
import type { CallHandlers, UnaryHandler } from "./call-handlers.js";
import type { ServiceRegistration } from "./grpc-server.js";

/** What a device service implements of vplane.devicestate.v1.DeviceStateService. */
export interface DeviceStateHandlers {
  quiesceDevices: UnaryHandler<pb.QuiesceDevicesRequest, pb.QuiesceDevicesResponse>;
  exportDeviceState: UnaryHandler<pb.ExportDeviceStateRequest, pb.ExportDeviceStateResponse>;
  importDeviceState: UnaryHandler<pb.ImportDeviceStateRequest, pb.ImportDeviceStateResponse>;
  resumeDevices: UnaryHandler<pb.ResumeDevicesRequest, pb.ResumeDevicesResponse>;
  releaseDevices: UnaryHandler<pb.ReleaseDevicesRequest, pb.ReleaseDevicesResponse>;
}

/** The DeviceStateService registration every device service serves beside its own API. */
export function deviceStateService(handlers: CallHandlers, state: DeviceStateHandlers): ServiceRegistration {
  return {
    definition: DeviceStateServiceService,
    implementation: {
      quiesceDevices: handlers.unary(state.quiesceDevices),
      exportDeviceState: handlers.unary(state.exportDeviceState),
      importDeviceState: handlers.unary(state.importDeviceState),
      resumeDevices: handlers.unary(state.resumeDevices),
      releaseDevices: handlers.unary(state.releaseDevices),
    },
  };
}
