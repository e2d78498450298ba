// What tests in every package use to stand up real peers on this host.
export { freePort } from "./free-port.js";
export { selfSignedCertificate, type SelfSignedCertificate } from "./tls.js";
