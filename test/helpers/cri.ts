/**
 * A small CRI client, the calls a kubelet makes to run a pod sandbox: grpc-js for transport, and
 * the few runtime.v1 messages needed, encoded by hand with k8s.io/cri-api's field numbers
 * (api.proto). Only what the tests read is decoded.
 */
import { Client, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";

/* protobuf wire format: varints, length-delimited fields, maps as repeated {1: key, 2: value}. */
class Writer {
  private parts: Buffer[] = [];
  private varint(n: number): void {
    const b: number[] = [];
    let v = BigInt(n);
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v) byte |= 0x80;
      b.push(byte);
    } while (v);
    this.parts.push(Buffer.from(b));
  }
  uint(field: number, n: number | undefined): this {
    if (n) {
      this.varint(field << 3);
      this.varint(n);
    }
    return this;
  }
  bytes(field: number, b: Buffer | undefined): this {
    if (b === undefined) return this;
    this.varint((field << 3) | 2);
    this.varint(b.length);
    this.parts.push(b);
    return this;
  }
  string(field: number, s: string | undefined): this {
    return s ? this.bytes(field, Buffer.from(s)) : this;
  }
  message(field: number, w: Writer | undefined): this {
    return w ? this.bytes(field, w.done()) : this;
  }
  map(field: number, m: Record<string, string> | undefined): this {
    for (const [k, v] of Object.entries(m ?? {})) this.message(field, new Writer().string(1, k).string(2, v));
    return this;
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

type Fields = Map<number, (bigint | Buffer)[]>;

function read(buf: Buffer): Fields {
  const out: Fields = new Map();
  let i = 0;
  const varint = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[i++]!;
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
      shift += 7n;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const field = key >> 3;
    const wire = key & 7;
    let value: bigint | Buffer;
    if (wire === 0) value = varint();
    else if (wire === 2) {
      const len = Number(varint());
      value = buf.subarray(i, i + len);
      i += len;
    } else if (wire === 1) {
      value = buf.readBigUInt64LE(i);
      i += 8;
    } else if (wire === 5) {
      value = BigInt(buf.readUInt32LE(i));
      i += 4;
    } else throw new Error(`protobuf: wire type ${wire}`);
    out.set(field, [...(out.get(field) ?? []), value]);
  }
  return out;
}
const str = (f: Fields, n: number): string =>
  ((f.get(n)?.[0] as Buffer | undefined) ?? Buffer.alloc(0)).toString();
const msg = (f: Fields, n: number): Fields => read((f.get(n)?.[0] as Buffer | undefined) ?? Buffer.alloc(0));
const map = (f: Fields, n: number): Record<string, string> =>
  Object.fromEntries((f.get(n) ?? []).map((e) => [str(read(e as Buffer), 1), str(read(e as Buffer), 2)]));

export interface PortMapping {
  protocol?: "TCP" | "UDP" | "SCTP";
  containerPort: number;
  hostPort: number;
  hostIp?: string;
}

export interface SandboxConfig {
  name: string;
  uid: string;
  namespace: string;
  attempt?: number;
  hostname?: string;
  logDirectory?: string;
  portMappings?: PortMapping[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface SandboxStatus {
  id: string;
  state: "SANDBOX_READY" | "SANDBOX_NOTREADY";
  ip: string;
  /** PodSandboxNetworkStatus.additional_ips (the other family of a dual-stack pod). */
  additionalIps: string[];
  annotations: Record<string, string>;
  /** Verbose info: "info" is JSON with containerd's view, including the network namespace. */
  info: Record<string, string>;
}

function sandboxConfig(c: SandboxConfig): Writer {
  const protocols = { TCP: 0, UDP: 1, SCTP: 2 };
  const w = new Writer()
    .message(1, new Writer().string(1, c.name).string(2, c.uid).string(3, c.namespace).uint(4, c.attempt))
    .string(2, c.hostname ?? c.name)
    .string(3, c.logDirectory);
  for (const p of c.portMappings ?? [])
    w.message(
      5,
      new Writer()
        .uint(1, protocols[p.protocol ?? "TCP"])
        .uint(2, p.containerPort)
        .uint(3, p.hostPort)
        .string(4, p.hostIp),
    );
  return w.map(6, c.labels).map(7, c.annotations);
}

export class CriClient {
  private readonly client: Client;

  constructor(socket: string) {
    this.client = new Client(`unix://${socket}`, credentials.createInsecure());
  }

  close(): void {
    this.client.close();
  }

  private call(method: string, request: Buffer, timeoutMs = 120_000): Promise<Fields> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        `/runtime.v1.RuntimeService/${method}`,
        (b: Buffer) => b,
        (b: Buffer) => b,
        request,
        new Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err: ServiceError | null, res?: Buffer) =>
          err ? reject(err) : resolve(read(res ?? Buffer.alloc(0))),
      );
    });
  }

  async version(): Promise<{ runtimeName: string; runtimeVersion: string; runtimeApiVersion: string }> {
    const f = await this.call("Version", new Writer().string(1, "v1").done(), 30_000);
    return { runtimeName: str(f, 2), runtimeVersion: str(f, 3), runtimeApiVersion: str(f, 4) };
  }

  async runPodSandbox(c: SandboxConfig): Promise<string> {
    return str(await this.call("RunPodSandbox", new Writer().message(1, sandboxConfig(c)).done()), 1);
  }

  async stopPodSandbox(id: string): Promise<void> {
    await this.call("StopPodSandbox", new Writer().string(1, id).done());
  }

  async removePodSandbox(id: string): Promise<void> {
    await this.call("RemovePodSandbox", new Writer().string(1, id).done());
  }

  async podSandboxStatus(id: string): Promise<SandboxStatus> {
    const f = await this.call("PodSandboxStatus", new Writer().string(1, id).uint(2, 1).done());
    const s = msg(f, 1);
    return {
      id: str(s, 1),
      state: Number(s.get(3)?.[0] ?? 0n) === 0 ? "SANDBOX_READY" : "SANDBOX_NOTREADY",
      ip: str(msg(s, 5), 1),
      additionalIps: (msg(s, 5).get(2) ?? []).map((e) => str(read(e as Buffer), 1)),
      annotations: map(s, 8),
      info: map(f, 2),
    };
  }

  async listPodSandboxIds(): Promise<string[]> {
    const f = await this.call("ListPodSandbox", Buffer.alloc(0));
    return (f.get(1) ?? []).map((item) => str(read(item as Buffer), 1));
  }
}
