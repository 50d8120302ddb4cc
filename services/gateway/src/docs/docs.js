"use strict";
// The API page: operations from /openapi.json, a credential kept for this
// tab only (sessionStorage), and a "Try it" form per operation that sends
// the request to this gateway (same origin) and shows the answer.
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of children) node.append(child);
  return node;
};
const CREDENTIAL = "tenantry.docs.credential";
function credential() {
  try { return JSON.parse(sessionStorage.getItem(CREDENTIAL)); } catch { return null; }
}
function showCredential() {
  const c = credential();
  document.getElementById("auth-state").textContent = c
    ? (c.kind === "apikey" ? "Sending X-Api-Key." : "Sending Authorization: Bearer.")
    : "No credential: only public operations will succeed.";
}
function schemaText(spec, schema, depth = 0, seen = new Set()) {
  if (!schema) return "";
  if (schema.$ref) {
    const name = schema.$ref.split("/").pop();
    if (seen.has(name) || depth > 3) return name;
    seen = new Set(seen); seen.add(name);
    return schemaText(spec, spec.components.schemas[name], depth, seen);
  }
  const pad = "  ".repeat(depth + 1);
  if (schema.type === "object" && schema.properties) {
    const lines = Object.entries(schema.properties).map(([k, v]) => pad + k + ": " + schemaText(spec, v, depth + 1, seen));
    return "{\n" + lines.join("\n") + "\n" + "  ".repeat(depth) + "}";
  }
  if (schema.type === "array") return "[" + schemaText(spec, schema.items, depth, seen) + "]";
  if (schema.enum) return schema.enum.join(" | ");
  return (schema.type || "any") + (schema.format ? " (" + schema.format + ")" : "");
}
// A starting body: every field of the schema with an empty value of its type.
function example(spec, schema, depth = 0) {
  if (!schema) return {};
  if (schema.$ref) return depth > 2 ? {} : example(spec, spec.components.schemas[schema.$ref.split("/").pop()], depth + 1);
  if (schema.enum) return schema.enum[0];
  switch (schema.type) {
    case "object": {
      const out = {};
      for (const [k, v] of Object.entries(schema.properties || {})) {
        if (!(v.readOnly)) out[k] = example(spec, v, depth + 1);
      }
      return out;
    }
    case "array": return [];
    case "boolean": return false;
    case "integer": case "number": return 0;
    default: return "";
  }
}
async function send(method, path, op, form, output) {
  let url = path;
  for (const p of (op.parameters || []).filter(p => p.in === "path")) {
    const value = form.querySelector("[data-path='" + p.name + "']").value;
    url = url.replace("{" + p.name + "}", encodeURIComponent(value));
  }
  const query = new URLSearchParams();
  for (const input of form.querySelectorAll("[data-query]")) {
    if (input.value !== "") query.append(input.dataset.query, input.value);
  }
  if ([...query].length) url += "?" + query;
  const headers = {};
  const c = credential();
  if (c && c.kind === "apikey") headers["X-Api-Key"] = c.value;
  else if (c) headers["Authorization"] = "Bearer " + c.value;
  const init = { method: method.toUpperCase(), headers };
  const body = form.querySelector("textarea");
  if (body) { headers["Content-Type"] = "application/json"; init.body = body.value; }
  output.replaceChildren("Sending…");
  try {
    const response = await fetch(url, init);
    const text = await response.text();
    let shown = text;
    try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch { /* not one JSON value */ }
    const notable = ["x-request-id", "x-tenantry-consistency-token", "ratelimit-remaining", "retry-after"]
      .filter(h => response.headers.get(h)).map(h => h + ": " + response.headers.get(h));
    output.replaceChildren(
      el("p", { class: response.ok ? "status-ok" : "status-err" }, init.method + " " + url + " → " + response.status),
      el("pre", {}, notable.join("\n")),
      el("pre", {}, shown));
  } catch (e) {
    output.replaceChildren(el("p", { class: "status-err" }, "Request failed: " + e));
  }
}
function tryForm(spec, path, method, op) {
  const form = el("form", { class: "try" }, el("strong", {}, "Try it"));
  for (const p of op.parameters || []) {
    const input = el("input", p.in === "path" ? { "data-path": p.name, required: "" } : { "data-query": p.name });
    form.append(el("label", {}, el("span", {}, p.name + (p.in === "path" ? " *" : "")), input));
  }
  if (op.requestBody) {
    const schema = op.requestBody.content["application/json"].schema;
    const area = el("textarea", { "aria-label": "request body" });
    area.value = JSON.stringify(example(spec, schema), null, 2);
    form.append(el("label", {}, "Body (application/json)"), area);
  }
  const output = el("div", { "aria-live": "polite" });
  form.append(el("button", { type: "submit" }, "Send"), output);
  form.addEventListener("submit", e => { e.preventDefault(); send(method, path, op, form, output); });
  return form;
}
function render(spec, filter) {
  const root = document.getElementById("api");
  root.replaceChildren();
  const byTag = new Map();
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const text = (method + " " + path + " " + op["x-grpc-method"]).toLowerCase();
      if (filter && !text.includes(filter.toLowerCase())) continue;
      const tag = (op.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([path, method, op]);
    }
  }
  for (const [tag, ops] of [...byTag].sort()) {
    root.append(el("h2", {}, tag));
    for (const [path, method, op] of ops) {
      const body = el("div", { class: "body" });
      body.append(el("p", {}, op.description || ""));
      body.append(el("p", {}, "gRPC: ", el("code", {}, op["x-grpc-method"]), " · rate-limit class: ", el("code", {}, op["x-rate-limit-class"])));
      if (op.parameters && op.parameters.length) {
        const table = el("table", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "description")));
        for (const p of op.parameters) table.append(el("tr", {}, el("td", {}, el("code", {}, p.name)), el("td", {}, p.in), el("td", {}, schemaText(spec, p.schema)), el("td", {}, p.description || "")));
        body.append(table);
      }
      if (op.requestBody) body.append(el("p", {}, "Request body"), el("pre", {}, schemaText(spec, op.requestBody.content["application/json"].schema)));
      const ok = op.responses["200"];
      const [type, media] = Object.entries(ok.content)[0];
      body.append(el("p", {}, "Response (" + type + ")"), el("pre", {}, schemaText(spec, media.schema)));
      const details = el("details", {}, el("summary", {}, el("span", { class: "m " + method }, method.toUpperCase()), " " + path), body);
      // The form is built when the operation is first opened.
      details.addEventListener("toggle", () => {
        if (details.open && !body.querySelector(".try")) body.append(tryForm(spec, path, method, op));
      });
      root.append(details);
    }
  }
  if (!byTag.size) root.append("No operation matches.");
}
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("auth").addEventListener("submit", e => {
    e.preventDefault();
    const value = document.getElementById("auth-value").value.trim();
    if (value) sessionStorage.setItem(CREDENTIAL, JSON.stringify({ kind: document.getElementById("auth-kind").value, value }));
    document.getElementById("auth-value").value = "";
    showCredential();
  });
  document.getElementById("auth-forget").addEventListener("click", () => { sessionStorage.removeItem(CREDENTIAL); showCredential(); });
  showCredential();
  fetch("/openapi.json").then(r => r.json()).then(spec => {
    const input = document.getElementById("filter");
    render(spec, "");
    input.addEventListener("input", () => render(spec, input.value));
  }).catch(e => { document.getElementById("api").textContent = "Cannot load /openapi.json: " + e; });
});
