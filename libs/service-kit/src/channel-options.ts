import type { ChannelOptions } from "@grpc/grpc-js";

/**
 * Message-size and keepalive settings, set explicitly on both servers and clients so the two
 * ends agree: equivalent to GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, GRPC_ARG_KEEPALIVE_TIME_MS and
 * GRPC_ARG_KEEPALIVE_TIMEOUT_MS in gRPC Core.
 */
export interface ChannelLimits {
  maxMessageBytes: number;
  keepaliveTimeMs: number;
  keepaliveTimeoutMs: number;
}

/**
 * 64 MiB: the unary device-state calls (ExportDeviceState's answer, ImportDeviceState: save and
 * restore) carry a VM's whole device state in one message, and the largest the services hold
 * (1,048,576 sources, 2,048 vCPUs with their queues, 1,024 StreamIDs) is about 21 MB. A live
 * migration's device state crosses in chunks of at most 1 MiB (device-state-chunks.ts).
 */
export const DEFAULT_CHANNEL_LIMITS: ChannelLimits = {
  maxMessageBytes: 64 * 1024 * 1024,
  keepaliveTimeMs: 30_000,
  keepaliveTimeoutMs: 10_000,
};

export function serverChannelOptions(limits: ChannelLimits): ChannelOptions {
  return {
    "grpc.max_receive_message_length": limits.maxMessageBytes,
    "grpc.max_send_message_length": limits.maxMessageBytes,
    "grpc.keepalive_time_ms": limits.keepaliveTimeMs,
    "grpc.keepalive_timeout_ms": limits.keepaliveTimeoutMs,
    // Clients ping no more often than every 10 s without being sent GOAWAY (too_many_pings).
    "grpc.http2.min_ping_interval_without_data_ms": 10_000,
    "grpc.keepalive_permit_without_calls": 1,
  };
}

/**
 * The HTTP/2 receive window a client opens: large answers (a VM's device state) arrive without a
 * stall for a WINDOW_UPDATE every 64 KiB, HTTP/2's initial window.
 */
const CLIENT_FLOW_CONTROL_WINDOW_BYTES = 16 * 1024 * 1024;

/**
 * A peer that restarted (a crash, an upgrade) is called again within about 2 s of coming back:
 * gRPC's default backoff grows to 120 s, during which every call and health check of that peer
 * fails at once with UNAVAILABLE although it serves again. Peers are a few network hops away, so
 * a reconnect attempt every 2 s costs next to nothing.
 */
const MAX_RECONNECT_BACKOFF_MS = 2_000;

export function clientChannelOptions(limits: ChannelLimits = DEFAULT_CHANNEL_LIMITS): ChannelOptions {
  return {
    "grpc.max_receive_message_length": limits.maxMessageBytes,
    "grpc.max_send_message_length": limits.maxMessageBytes,
    "grpc.keepalive_time_ms": limits.keepaliveTimeMs,
    "grpc.keepalive_timeout_ms": limits.keepaliveTimeoutMs,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc-node.flow_control_window": CLIENT_FLOW_CONTROL_WINDOW_BYTES,
    "grpc.max_reconnect_backoff_ms": MAX_RECONNECT_BACKOFF_MS,
  };
}
