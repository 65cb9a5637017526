export { migrationDescription } from "./migration-service.js";
