import { fileURLToPath } from "node:url";

/**
 * Path of the FileDescriptorSet of every vplane proto (with imports), written by `buf build` at
 * build time; the service kit serves it through gRPC server reflection.
 */
export const descriptorSetPath = fileURLToPath(new URL("../descriptor-set.binpb", import.meta.url));
