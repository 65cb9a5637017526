export { buildApp } from "./app.js";
export { gatewayOptionsSpec, type GatewayOptions } from "./gateway-options.js";
