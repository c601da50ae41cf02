/**
 * Unknown-field check for Kubernetes objects, as the API server's strict field validation
 * (kubectl's default --validate=strict) rejects them: every key of a manifest must be a property
 * of the Kubernetes type kubernetes-models declares for it (generated from the same OpenAPI
 * definitions). Read with the TypeScript compiler API; the compiled validators do not reject
 * unknown fields.
 */
import ts from "typescript";
import { join } from "node:path";

const VIRTUAL = "__k8s_types__.ts";

export class FieldChecker {
  private readonly checker: ts.TypeChecker;
  private readonly types = new Map<string, ts.Type>();

  /** `kinds`: kind → [module under kubernetes-models, interface name]. */
  constructor(root: string, kinds: Record<string, [string, string]>) {
    const source = Object.entries(kinds)
      .map(
        ([kind, [mod, iface]]) =>
          `import type { ${iface} as T_${kind} } from "kubernetes-models/${mod}";\nexport type ${kind} = T_${kind};`,
      )
      .join("\n");
    const options: ts.CompilerOptions = {
      moduleResolution: ts.ModuleResolutionKind.Node10,
      module: ts.ModuleKind.ESNext,
      target: ts.ScriptTarget.ES2022,
      noEmit: true,
      skipLibCheck: true,
      types: [],
    };
    const file = join(root, VIRTUAL);
    const host = ts.createCompilerHost(options);
    const getSourceFile = host.getSourceFile.bind(host);
    host.getSourceFile = (name, lang, ...rest) =>
      name === file ? ts.createSourceFile(name, source, lang) : getSourceFile(name, lang, ...rest);
    const fileExists = host.fileExists.bind(host);
    host.fileExists = (name) => name === file || fileExists(name);
    const program = ts.createProgram([file], options, host);
    this.checker = program.getTypeChecker();
    const sf = program.getSourceFile(file)!;
    for (const st of sf.statements)
      if (ts.isTypeAliasDeclaration(st))
        this.types.set(st.name.text, this.checker.getTypeAtLocation(st.name));
  }

  /** Paths of keys the object's type does not have ("spec.template.spec.containers[0].bogus"). */
  unknownFields(kind: string, value: unknown): string[] {
    const type = this.types.get(kind);
    if (!type) throw new Error(`no type for kind ${kind}`);
    const out: string[] = [];
    this.walk(value, type, kind, out);
    return out;
  }

  private walk(value: unknown, type: ts.Type, path: string, out: string[]): void {
    const t = this.checker.getNonNullableType(type);
    if (Array.isArray(value)) {
      const element = this.checker.isArrayType(t)
        ? this.checker.getTypeArguments(t as ts.TypeReference)[0]
        : undefined;
      if (element) value.forEach((v, i) => this.walk(v, element, `${path}[${i}]`, out));
      return;
    }
    if (!value || typeof value !== "object") return;
    const candidates = t.isUnion() ? t.types : [t];
    for (const [key, v] of Object.entries(value)) {
      const prop = candidates.map((c) => c.getProperty(key)).find((p) => p);
      if (prop) {
        this.walk(v, this.checker.getTypeOfSymbol(prop), `${path}.${key}`, out);
        continue;
      }
      const index = candidates
        .map((c) => this.checker.getIndexInfoOfType(c, ts.IndexKind.String))
        .find((i) => i);
      if (index) this.walk(v, index.type, `${path}.${key}`, out);
      else out.push(`${path}.${key}`);
    }
  }
}
