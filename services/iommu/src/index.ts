export { iommuDescription } from "./iommu-service.js";
