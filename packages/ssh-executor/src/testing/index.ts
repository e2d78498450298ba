export { startSshd, type Sshd, type SshdOptions } from "./sshd.js";
export {
  startFakeSshServer,
  generateSshPrivateKey,
  type FakeExec,
  type FakeSshServer,
  type FakeSshServerOptions,
} from "./fake-server.js";
export { rejection } from "./rejection.js";
export { sshCommand, type SshCommandTarget } from "./ssh-command.js";
