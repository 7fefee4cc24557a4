// Validates Kubernetes objects (a JSON array on stdin) with the validators that the npm packages
// @kubernetes-models/cert-manager and @kubernetes-models/argo-cd generate from the projects' published API
// types, and refuses properties their TypeScript declarations do not list (strict.mjs).
// Usage: node validate.mjs <dir holding node_modules>. Prints one JSON array, per object:
// { kind, name, errors: ["<path>: <message>"] }, or { kind, missing: "<file>" } when a validator is absent.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { unknownProperties } from "./strict.mjs";

// kind -> [compiled validator, TypeScript declaration, interface]
const VALIDATORS = {
  "cert-manager.io/v1 ClusterIssuer": [
    "@kubernetes-models/cert-manager/_schemas/ComGithubCertManagerCertManagerPkgApisCertmanagerV1ClusterIssuer.js",
    "@kubernetes-models/cert-manager/cert-manager.io/v1/ClusterIssuer.d.ts",
    "IClusterIssuer",
  ],
  "argoproj.io/v1alpha1 ApplicationSet": [
    "@kubernetes-models/argo-cd/_schemas/ComGithubArgoprojArgoCdV3PkgApisApplicationV1alpha1ApplicationSet.js",
    "@kubernetes-models/argo-cd/argoproj.io/v1alpha1/ApplicationSet.d.ts",
    "IApplicationSet",
  ],
};

const dir = process.argv[2];
const objects = JSON.parse(readFileSync(0, "utf8"));
const out = [];
for (const o of objects) {
  const key = `${o.apiVersion} ${o.kind}`;
  if (!VALIDATORS[key]) {
    out.push({ kind: key, missing: `no published validator is mapped for ${key}` });
    continue;
  }
  const [module, dts, iface] = VALIDATORS[key].map((m) => (m.includes("/") ? join(dir, "node_modules", m) : m));
  const absent = [module, dts].filter((f) => !existsSync(f));
  if (absent.length) {
    absent.forEach((f) => out.push({ kind: key, missing: f }));
    continue;
  }
  const { validate } = await import(pathToFileURL(module).href);
  const ok = validate(o);
  const errors = ok
    ? []
    : (validate.errors ?? []).map((e) => `${e.instancePath || "/"}: ${e.keyword} ${JSON.stringify(e.params)}`);
  errors.push(...unknownProperties(o, dts, iface));
  out.push({ kind: key, name: o.metadata?.name ?? null, errors });
}
process.stdout.write(JSON.stringify(out));
