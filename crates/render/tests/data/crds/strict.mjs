// Unknown-property check for validate.mjs: the compiled validators of @kubernetes-models/* do not refuse
// unknown properties, but the packages' TypeScript declarations (.d.ts, generated from the same API types) list
// every field, so the object is walked along them. Parses only the TypeScript subset the generator writes.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const files = new Map(); // path -> { imports: Map(name -> path), decls: Map(name -> type AST) }
let nodeModules = "";

function resolveImport(from, spec) {
  let p = spec.startsWith(".") ? resolve(dirname(from), spec) : join(nodeModules, spec);
  p = p.replace(/\.js$/, "");
  return p + ".d.ts";
}

// Tokenizer + parser for the subset of TypeScript the generator writes.
function tokenize(s) {
  const re = /\s*("(?:[^"\\]|\\.)*"|[A-Za-z_$][\w$]*|-?\d+(?:\.\d+)?|[{}\[\]<>;:?|,()=&])/gy;
  const out = [];
  let m;
  while ((m = re.exec(s))) out.push(m[1]);
  return out;
}

function parseType(t, i) {
  const alts = [];
  let [ty, j] = parsePrimary(t, i);
  alts.push(ty);
  while (t[j] === "|") {
    [ty, j] = parsePrimary(t, j + 1);
    alts.push(ty);
  }
  return [alts.length === 1 ? alts[0] : { k: "union", alts }, j];
}

function parsePrimary(t, i) {
  const tok = t[i];
  if (tok === "{") return parseObject(t, i);
  if (tok === "Array" && t[i + 1] === "<") {
    const [el, j] = parseType(t, i + 2);
    return [{ k: "array", el }, j + 1];
  }
  if (tok === "(") {
    const [ty, j] = parseType(t, i + 1);
    return [ty, j + 1];
  }
  let ty;
  if (tok.startsWith('"') || /^-?\d/.test(tok) || ["string", "number", "boolean", "any", "unknown", "null", "undefined", "true", "false", "object"].includes(tok))
    ty = { k: "any" };
  else ty = { k: "ref", name: tok };
  let j = i + 1;
  while (t[j] === "[" && t[j + 1] === "]") {
    ty = { k: "array", el: ty };
    j += 2;
  }
  return [ty, j];
}

function parseObject(t, i) {
  const props = new Map();
  let map = null;
  let j = i + 1;
  while (t[j] !== "}") {
    if (t[j] === "[") {
      // [key: string]: T;
      j += 5; // [ key : string ]
      const [ty, k] = parseType(t, j + 1);
      map = ty;
      j = k;
    } else {
      const name = JSON.parse(t[j].startsWith('"') ? t[j] : JSON.stringify(t[j]));
      j++;
      if (t[j] === "?") j++;
      const [ty, k] = parseType(t, j + 1);
      props.set(name, ty);
      j = k;
    }
    if (t[j] === ";" || t[j] === ",") j++;
  }
  return [{ k: "object", props, map }, j + 1];
}

function load(path) {
  if (files.has(path)) return files.get(path);
  const f = { imports: new Map(), decls: new Map() };
  files.set(path, f);
  if (!existsSync(path)) return f;
  const src = readFileSync(path, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  for (const m of src.matchAll(/import\s*(?:type\s*)?\{([^}]*)\}\s*from\s*"([^"]+)"/g))
    for (const n of m[1].split(",").map((x) => x.trim()).filter(Boolean)) {
      const [orig, alias] = n.split(/\s+as\s+/);
      f.imports.set((alias ?? orig).trim(), { path: resolveImport(path, m[2]), name: orig.trim() });
    }
  for (const m of src.matchAll(/export\s+interface\s+(\w+)(?:\s+extends\s+([\w\s,]+))?\s*\{/g)) {
    const t = tokenize(src.slice(m.index + m[0].length - 1));
    const [obj] = parseObject(t, 0);
    obj.bases = (m[2] ?? "").split(",").map((x) => x.trim()).filter((x) => x && x !== "TypeMeta");
    f.decls.set(m[1], obj);
  }
  for (const m of src.matchAll(/export\s+type\s+(\w+)\s*=\s*([^;]+);/g)) {
    const [ty] = parseType(tokenize(m[2]), 0);
    f.decls.set(m[1], ty);
  }
  for (const m of src.matchAll(/export\s+type\s*\{([^}]*)\}/g))
    for (const n of m[1].split(",")) {
      const [orig, alias] = n.trim().split(/\s+as\s+/);
      if (alias && f.decls.has(orig)) f.decls.set(alias.trim(), f.decls.get(orig));
    }
  return f;
}

function lookup(path, name, depth = 0) {
  const f = load(path);
  if (f.decls.has(name)) return { type: f.decls.get(name), path };
  const imp = f.imports.get(name);
  if (imp && depth < 10) return lookup(imp.path, imp.name, depth + 1);
  return null;
}

function propsOf(obj, path) {
  const props = new Map(obj.props);
  for (const b of obj.bases ?? []) {
    const r = lookup(path, b);
    if (r && r.type.k === "object") for (const [k, v] of propsOf(r.type, r.path)) props.set(k, { ...v, at: v.at ?? r.path });
  }
  return props;
}

export function unknownProperties(value, file, iface) {
  nodeModules = file.slice(0, file.indexOf("node_modules") + "node_modules".length);
  const errors = [];
  const walk = (v, ty, path, at) => {
    if (v === null || v === undefined || !ty) return;
    switch (ty.k) {
      case "ref": {
        const r = lookup(path, ty.name);
        if (r) walk(v, r.type, r.path, at);
        else errors.push(`${at || "/"}: type ${ty.name} not found in the declarations (${path})`);
        return;
      }
      case "union":
        return; // only scalars in the generated unions
      case "array":
        if (Array.isArray(v)) v.forEach((x, i) => walk(x, ty.el, path, `${at}/${i}`));
        return;
      case "object": {
        if (typeof v !== "object" || Array.isArray(v)) return;
        const props = propsOf(ty, path);
        if (props.size === 0 && !ty.map) return; // an empty interface (JSON, RawExtension): any fields
        for (const [k, x] of Object.entries(v)) {
          if (props.has(k)) walk(x, props.get(k), props.get(k).at ?? path, `${at}/${k}`);
          else if (ty.map) walk(x, ty.map, path, `${at}/${k}`);
          else errors.push(`${at}/${k}: unknown property (not in ${iface})`);
        }
        return;
      }
    }
  };
  walk(value, { k: "ref", name: iface }, file, "");
  return errors;
}
