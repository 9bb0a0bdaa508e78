// CPython 3.14 bytecode for ddb_stream_runtime, without a native 3.14 (none installs here):
// Pyodide 314.x is CPython 3.14 compiled to WebAssembly, and a .pyc depends on the
// CPython version only (magic number), not on the machine.
//
//   npm ci --prefix scripts/pyc314
//   node scripts/pyc314/pyc314.mjs build lambda_src/ddb_stream_runtime/_bytecode  # scripts/bootstrap does
//   node scripts/pyc314/pyc314.mjs time            # import with and without them
//   node scripts/pyc314/pyc314.mjs check ASSET_DIR # a staged asset imports without compiling
//
// "build" writes <module>.cpython-314.pyc files in PEP 552's checked-hash mode: no
// timestamp, so the same sources give the same bytes (the asset hash stays stable), and
// the interpreter checks the source's hash before using one, so a stale file is never
// run. "time" imports each handler module in 3.14 from sources only (compiled at every
// import, as in today's assets) and with the .pyc files, stdlib already loaded (as with
// boto3), in alternating rounds.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadPyodide } from "pyodide";

const here = path.dirname(fileURLToPath(import.meta.url));
const source = path.resolve(here, "../../lambda_src/ddb_stream_runtime");
const [command, outDir] = process.argv.slice(2);
const py = await loadPyodide();
const modules = fs.readdirSync(source).filter((n) => n.endsWith(".py")).sort();
for (const root of ["/src", "/pyc"]) py.FS.mkdirTree(`${root}/ddb_stream_runtime/__pycache__`);
for (const name of modules) {
  const text = fs.readFileSync(path.join(source, name));
  py.FS.writeFile(`/src/ddb_stream_runtime/${name}`, text);
  py.FS.writeFile(`/pyc/ddb_stream_runtime/${name}`, text);
}
py.runPython(`
import importlib.util, os, py_compile, sys
for name in sorted(os.listdir("/pyc/ddb_stream_runtime")):
    if name.endswith(".py"):
        py_compile.compile(
            f"/pyc/ddb_stream_runtime/{name}",
            cfile=importlib.util.cache_from_source(f"/pyc/ddb_stream_runtime/{name}"),
            dfile=f"ddb_stream_runtime/{name}",
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
        )
`);
const version = py.runPython("import sys, importlib.util; f'{sys.version.split()[0]} magic {importlib.util.MAGIC_NUMBER.hex()}'");

if (command === "build") {
  fs.mkdirSync(outDir, { recursive: true });
  // Build output, rebuilt whole: a module removed from the sources leaves no file behind.
  for (const old of fs.readdirSync(outDir).filter((n) => n.endsWith(".pyc"))) {
    fs.rmSync(path.join(outDir, old));
  }
  for (const name of py.FS.readdir("/pyc/ddb_stream_runtime/__pycache__").filter((n) => n.endsWith(".pyc"))) {
    fs.writeFileSync(path.join(outDir, name), py.FS.readFile(`/pyc/ddb_stream_runtime/__pycache__/${name}`));
  }
  console.log(`CPython ${version}: ${modules.length} modules -> ${outDir}`);
} else if (command === "time") {
  console.log(`CPython ${version} (WebAssembly: absolute times are slower than native)`);
  console.log(py.runPython(`
import importlib, statistics, sys, time
sys.dont_write_bytecode = True  # /var/task is read-only: nothing is cached between imports
import base64, dataclasses, datetime, decimal, hashlib, json, logging, math, random, re, threading, typing, zlib
def once(root, module):
    for name in [m for m in sys.modules if m.split(".")[0] == "ddb_stream_runtime"]:
        del sys.modules[name]
    sys.path.insert(0, root)
    importlib.invalidate_caches()
    start = time.perf_counter()
    importlib.import_module(module)
    elapsed = time.perf_counter() - start
    sys.path.remove(root)
    assert sys.modules[module].__file__.startswith(root)
    return elapsed
rows = []
for handler in ("batch", "processor", "router", "archiver", "counter", "indexer", "replicator"):
    module = "ddb_stream_runtime." + handler
    src, pyc = [], []
    for _ in range(15):
        src.append(once("/src", module))
        pyc.append(once("/pyc", module))
    rows.append(
        f"{module:30} sources: min {min(src) * 1000:6.2f} ms, median {statistics.median(src) * 1000:6.2f}"
        f" | .pyc: min {min(pyc) * 1000:6.2f} ms, median {statistics.median(pyc) * 1000:6.2f}"
    )
"\\n".join(rows)
`));
} else if (command === "check") {
  // outDir: a staged asset (ddb_stream_runtime/ with its __pycache__/) to import in 3.14.
  const walk = (dir, into) => {
    py.FS.mkdirTree(into);
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const from = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(from, `${into}/${entry.name}`);
      else py.FS.writeFile(`${into}/${entry.name}`, fs.readFileSync(from));
    }
  };
  walk(path.join(outDir, "ddb_stream_runtime"), "/asset/ddb_stream_runtime");
  console.log(py.runPython(`
import importlib, importlib._bootstrap_external as external, os, sys
sys.dont_write_bytecode = True
compiled = []
original = external.SourceLoader.source_to_code
def source_to_code(self, data, path, **kwargs):
    compiled.append(path)
    return original(self, data, path, **kwargs)
external.SourceLoader.source_to_code = source_to_code
sys.path.insert(0, "/asset")
names = sorted(n[:-3] for n in os.listdir("/asset/ddb_stream_runtime") if n.endswith(".py"))
for name in names:
    if name != "backfill":  # a command-line tool: imports boto3, not in Pyodide
        importlib.import_module("ddb_stream_runtime" + ("" if name == "__init__" else "." + name))
f"imported {len(names) - 1} modules from the asset, compiled from source: {compiled or 'none'}"
`));
} else {
  console.error("usage: node pyc314.mjs build OUT_DIR | time | check ASSET_DIR");
  process.exit(2);
}
