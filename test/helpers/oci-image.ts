/**
 * A container image built from Debian's static busybox, as an OCI image layout tarball that
 * `ctr images import` reads: no registry needed. Its command serves /www over HTTP on port 80
 * (busybox httpd), so a pod sandbox made from it answers on the pod's address.
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { gzip, tar, type TarEntry } from "../../scripts/release/tar.js";

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const MTIME = 1_700_000_000;

export function busyboxImage(out: string, name: string, busybox = "/bin/busybox"): void {
  const file = (n: string, data: Buffer | string, mode = 0o644): TarEntry => ({
    name: n,
    type: "file",
    mode,
    data: Buffer.isBuffer(data) ? data : Buffer.from(data),
  });
  const dir = (n: string): TarEntry => ({ name: n, type: "dir", mode: 0o755 });
  const layerTar = tar(
    [
      dir("bin/"),
      file("bin/busybox", readFileSync(busybox), 0o755),
      { name: "bin/sh", type: "symlink", mode: 0o777, linkTarget: "busybox" },
      { name: "bin/sleep", type: "symlink", mode: 0o777, linkTarget: "busybox" },
      dir("www/"),
      file("www/index.html", "hello from the pod\n"),
    ],
    MTIME,
  );
  const layer = gzip(layerTar);
  const config = Buffer.from(
    JSON.stringify({
      architecture: process.arch === "arm64" ? "arm64" : "amd64",
      os: "linux",
      config: { Cmd: ["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"], WorkingDir: "/" },
      rootfs: { type: "layers", diff_ids: [`sha256:${sha(layerTar)}`] },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: `sha256:${sha(config)}`,
        size: config.length,
      },
      layers: [
        {
          mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
          digest: `sha256:${sha(layer)}`,
          size: layer.length,
        },
      ],
    }),
  );
  const index = JSON.stringify({
    schemaVersion: 2,
    manifests: [
      {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: `sha256:${sha(manifest)}`,
        size: manifest.length,
        annotations: {
          "io.containerd.image.name": name,
          "org.opencontainers.image.ref.name": name.split(":").pop(),
        },
      },
    ],
  });
  const blob = (b: Buffer) => file(`blobs/sha256/${sha(b)}`, b);
  writeFileSync(
    out,
    tar(
      [
        file("oci-layout", JSON.stringify({ imageLayoutVersion: "1.0.0" })),
        file("index.json", index),
        dir("blobs/"),
        dir("blobs/sha256/"),
        blob(config),
        blob(layer),
        blob(manifest),
      ],
      MTIME,
    ),
  );
}
