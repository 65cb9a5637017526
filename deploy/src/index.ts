export { catalogEntry, serviceCatalog, type CatalogEntry, type ServiceName } from "./service-catalog.js";
export { dialAddress, isHealthy } from "./health-probe.js";
