import { createHash } from "node:crypto";

/**
 * Content-addressed storage for the files on fake VMs. A benchmark deploys the same 0.77 MiB
 * runner to a thousand VMs; each upload arrives as its own Buffer, and keeping them all cost a
 * thousand copies. Every file written goes through `intern`, which hands back the one Buffer
 * already held for equal content, so a cloud keeps one copy per distinct content however many
 * VMs hold it. Entries are weak: content no VM holds any longer is freed.
 *
 * Shared Buffers must not be written in place; replace a file with `files.set` instead.
 */
export class ContentStore {
  readonly #byDigest = new Map<string, WeakRef<Buffer>>();
  readonly #md5 = new WeakMap<Buffer, string>();
  readonly #forget = new FinalizationRegistry<string>((digest) => {
    if (this.#byDigest.get(digest)?.deref() === undefined) this.#byDigest.delete(digest);
  });

  /** The shared Buffer with the same bytes as `data` (`data` itself if it is the first). */
  intern(data: Buffer): Buffer {
    const digest = `${createHash("sha256").update(data).digest("hex")}:${data.length}`;
    const held = this.#byDigest.get(digest)?.deref();
    if (held !== undefined) return held;
    this.#byDigest.set(digest, new WeakRef(data));
    this.#forget.register(data, digest);
    return data;
  }

  /** The md5 hex digest of `data`, computed once per stored Buffer (md5sum of a deployed runner). */
  md5(data: Buffer): string {
    let sum = this.#md5.get(data);
    if (sum === undefined) {
      sum = createHash("md5").update(data).digest("hex");
      this.#md5.set(data, sum);
    }
    return sum;
  }

  /** How many distinct contents are held now. */
  get size(): number {
    let n = 0;
    for (const ref of this.#byDigest.values()) if (ref.deref() !== undefined) n++;
    return n;
  }
}

/**
 * The files on one fake VM: a `Map` from path to content, as before, except that every write
 * (uploads, the instance secret, tests' own `files.set`) stores the cloud-wide shared Buffer
 * for that content.
 */
export class VmFiles extends Map<string, Buffer> {
  readonly #store: ContentStore;
  constructor(store: ContentStore) {
    super();
    this.#store = store;
  }
  override set(path: string, data: Buffer): this {
    return super.set(path, this.#store.intern(data));
  }
}
