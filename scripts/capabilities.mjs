// `npm run capabilities`: asks each running service what it offers on this host (backends, and
// why not where not; limits). Addresses come from the same variables the services read.
import { credentials } from "@grpc/grpc-js";
import { InterruptControllerServiceClient } from "@vplane/proto/gen/vplane/interrupt/v1/service";
import { IommuServiceClient } from "@vplane/proto/gen/vplane/iommu/v1/service";
import { MigrationServiceClient } from "@vplane/proto/gen/vplane/migration/v1/service";
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import { unaryCall } from "@vplane/service-kit";

const targets = [
  [InterruptControllerServiceClient, process.env.VPLANE_INTERRUPT_ADDR || "127.0.0.1:50051"],
  [IommuServiceClient, process.env.VPLANE_IOMMU_ADDR || "127.0.0.1:50052"],
  [MigrationServiceClient, process.env.VPLANE_MIGRATION_ADDR || "127.0.0.1:50053"],
];
let failed = false;
for (const [Client, address] of targets) {
  const client = new Client(address, credentials.createInsecure());
  try {
    const { capabilities } = await unaryCall(client.getCapabilities.bind(client), {}, { timeoutMs: 3000 });
    console.log(`${capabilities.service} ${capabilities.version} at ${address}`);
    for (const b of capabilities.backends) {
      const why = b.available ? "available" : `unavailable: ${b.unavailableCode}: ${b.unavailableReason}`;
      console.log(`  ${Backend[b.backend].replace("BACKEND_", "").toLowerCase().padEnd(9)} ${why}`);
    }
    for (const [name, value] of Object.entries(capabilities.limits))
      console.log(`  limit ${name} = ${value}`);
  } catch (error) {
    failed = true;
    console.log(`${address}: ${error.code} ${error.message}`);
  } finally {
    client.close();
  }
}
process.exit(failed ? 1 : 0);
