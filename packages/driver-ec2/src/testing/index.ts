export {
  MOTO_CREDENTIALS,
  MOTO_REGION,
  motoSitePackages,
  startMoto,
  type MotoServer,
} from "./moto.js";
export { startFaultProxy, type Ec2Fault, type FaultProxy } from "./fault-proxy.js";
export { awsError, instanceType, recordingLogger, type LogEntry } from "./fixtures.js";
