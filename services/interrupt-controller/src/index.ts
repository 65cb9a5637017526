export { interruptControllerDescription } from "./interrupt-controller-service.js";
