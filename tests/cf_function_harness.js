// Test harness: runs exported CloudFront Functions (cloudfront-js-2.0) under Node, one process per test module.
//
// Protocol: one JSON object per stdin line, one JSON answer per stdout line, in order.
//   {"op": "load", "id": "name", "code": "<exported function source>"}  -> {"ok": true} | {"error": "..."}
//   {"op": "run", "id": "name", "event": {...viewer-request event...}}   -> {"ok": <returned object>} | {"error": "..."}
//
// The exported code is not changed: it is compiled as it is, in strict mode (CloudFront Functions always
// run in strict mode, "JavaScript runtime 2.0 features for CloudFront Functions"), inside a fresh vm
// context that has only the ECMAScript built-ins (no require, process, Buffer) and that refuses code
// generation from strings, so a function that used eval() or the Function constructor would fail here as it
// fails at the edge ("Restricted features: dynamic code evaluation"). The event is parsed and the result
// serialised inside that context, so the function sees objects of its own realm, as at the edge.
"use strict";
const readline = require("readline");
const vm = require("vm");

const handlers = Object.create(null);

function load(id, code) {
  const context = vm.createContext(Object.create(null), {codeGeneration: {strings: false, wasm: false}});
  new vm.Script("\"use strict\";\n" + code, {filename: id + ".js"}).runInContext(context);
  const wrap = new vm.Script(
    "(function (h) { return function (s) { return JSON.stringify(h(JSON.parse(s))); }; })(handler)",
  ).runInContext(context);
  if (typeof wrap !== "function") throw new Error("the code defines no handler(event)");
  handlers[id] = wrap;
}

function answer(line) {
  let msg;
  try {
    msg = JSON.parse(line);
  } catch (err) {
    return {error: "bad json: " + err.message};
  }
  try {
    if (msg.op === "load") {
      load(msg.id, msg.code);
      return {ok: true};
    }
    if (msg.op === "run") {
      const run = handlers[msg.id];
      if (run === undefined) return {error: "no function loaded as " + msg.id};
      return {ok: JSON.parse(run(JSON.stringify(msg.event)))};
    }
    return {error: "unknown op " + msg.op};
  } catch (err) {
    return {error: String(err && err.stack ? err.stack : err)};
  }
}

readline.createInterface({input: process.stdin}).on("line", (line) => {
  process.stdout.write(JSON.stringify(answer(line)) + "\n");
});
