import { describe, expect, it } from "vitest";
import { awsKeyFingerprints } from "./keypair.js";

// Vectors made with: ssh-keygen -e -m PKCS8 -f k.pub | openssl pkey -pubin -outform DER | openssl md5 -c
// (and sha1 -c), and `ssh-keygen -lf` for ed25519.
const RSA =
  "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDOW1kmN8Ez5JSjsxDNkiKiZmFI6rQizeddgDOlLZjT4OUD+G0R1brfJ9lDTeLO5WWJL0b11NkIv+Es9FUZax7Ggd5UMzSgi5MUxgCUKI7TeIvfe9tzdRSHjBNwV4lhaRt7Ch4zGrsQ1sJm8Drexo2Jta4ORZ4A7G7OA1d0DRbpww== x";
const ED25519 =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEo5+O08I+d1IxTY7h7xktniqf5DB4B1EsbriUfdIKix y";

describe("awsKeyFingerprints", () => {
  it("gives MD5 and SHA-1 of the DER public key for RSA", () => {
    expect(awsKeyFingerprints(RSA)).toEqual([
      "bd:ba:5c:24:1f:09:fd:4a:42:7a:19:2c:e3:12:14:b0",
      "d7:3e:b9:25:fe:47:ce:70:65:ea:70:df:d1:63:68:d0:2f:81:38:7f",
    ]);
  });

  it("gives OpenSSH's SHA256 with and without padding for ed25519", () => {
    expect(awsKeyFingerprints(ED25519)).toEqual([
      "SHA256:MBAj6lotRH2/pVxfVxgfFyzwcJpNdW15d7KCEow1cGs=",
      "SHA256:MBAj6lotRH2/pVxfVxgfFyzwcJpNdW15d7KCEow1cGs",
    ]);
  });

  it("rejects text that is not an authorized_keys line", () => {
    expect(() => awsKeyFingerprints("not a key")).toThrow("not an authorized_keys line");
  });
});
