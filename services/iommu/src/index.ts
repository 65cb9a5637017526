export { iommuDescription, iommuDescriptionWith, type IommuServiceHooks } from "./iommu-service.js";
export { SmmuRegistry, type SmmuEntry } from "./smmu-registry.js";
