export { startSshd, type Sshd, type SshdOptions } from "./sshd.js";
export {
  startFakeSshServer,
  type FakeExec,
  type FakeSshServer,
  type FakeSshServerOptions,
} from "./fake-server.js";
