"""Helpers of deploy/validate.sh (run with the venv's Python).

  validate.py render-helm CHART VALUES... --out FILE [--set-json JSON] [--set EXPR]
      renders the chart offline (Helm's Go SDK via helm-python-sdk) as the
      release `tenantry`, into one multi-document YAML file; --set takes
      `helm --set` syntax
  validate.py reject-helm CHART VALUES... [--set-json JSON] [--set EXPR] --expect TEXT
      fails unless rendering with these values fails (values schema or a
      template's own check) with an error containing TEXT
  validate.py check-options CHART RENDERED.yaml VALUES...
      fails unless every optional setting the values turn on (scheduling,
      pull secrets, extraEnv / extraEnvFrom, per-service resources, Ingress,
      HTTPRoute) reached the objects it belongs to, and checks the HTTPRoute
      (a CRD kubernetes-validate has no schema for) structurally
  validate.py check-helm-readme CHART
      fails unless the values table of CHART/README.md documents every key of
      values.yaml and values.schema.json, nothing else, with the defaults of
      values.yaml
  validate.py lint-helm CHART VALUES... --kube-version vX.Y.Z
      `helm lint --strict`; fails on any warning or error
  validate.py metrics REPO
      lists the metrics the Rust code records (metrics::counter!/histogram!/
      gauge!) with their labels
  validate.py check-observability REPO [--promtool PATH]
      fails if the alert rules or the Grafana dashboard use a metric (or a
      label in a selector) the code does not record, if the PrometheusRule
      and the plain rules file disagree, or (with promtool) if a dashboard
      query does not parse
  validate.py compare KUSTOMIZE.yaml HELM.yaml
      fails unless both renderings hold the same objects: the same kinds and
      names, and the same specs (container args, env, probes, resources,
      selectors, policies, …) once the labels and annotations that only
      Helm adds (helm.sh/chart, app.kubernetes.io/managed-by, helm.sh/*,
      checksum/*) are set aside
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

RELEASE = "tenantry"
NAMESPACE = "tenantry"

HELM_ONLY_LABELS = {"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/version"}
HELM_ONLY_ANNOTATION_PREFIXES = ("helm.sh/", "checksum/")


def load_values(paths: list[str]) -> dict:
    import helm_python as helm

    merged: dict = {}
    for path in paths:
        merged = deep_merge(merged, helm.values_from_yaml(Path(path).read_text()))
    return merged


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def cli_values(args: argparse.Namespace) -> dict:
    """The values files, then --set-json, then --set, as helm merges them."""
    import helm_python as helm

    values = load_values(args.values)
    for extra in args.set_json or []:
        values = deep_merge(values, json.loads(extra))
    for expression in args.set or []:
        values = deep_merge(values, helm.parse_set_string(expression))
    return values


def render_helm(args: argparse.Namespace) -> int:
    import helm_python as helm

    values = cli_values(args)
    with helm.Chart.load(args.chart) as chart:
        chart.validate_schema(chart.merge_values(values))
        rendered = chart.render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for path in sorted(rendered):
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(rendered[path]):
            if doc:
                docs.append(doc)
    Path(args.out).write_text(yaml.safe_dump_all(docs, sort_keys=False))
    print(f"rendered {len(docs)} objects from {args.chart}")
    return 0


def reject_helm(args: argparse.Namespace) -> int:
    import helm_python as helm

    values = cli_values(args)
    try:
        with helm.Chart.load(args.chart) as chart:
            chart.validate_schema(chart.merge_values(values))
            chart.render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    except helm.HelmError as error:
        message = " ".join(str(error).split())
        if args.expect.lower() in message.lower():
            print(f"refused as expected: {message}")
            return 0
        print(f"refused, but not for the expected reason ({args.expect!r}): {message}")
        return 1
    print(f"accepted values that should have been refused: {json.dumps(values)}")
    return 1


def lint_helm(args: argparse.Namespace) -> int:
    import helm_python as helm

    values = load_values(args.values)
    report = helm.lint(args.chart, values, strict=True, kube_version=args.kube_version)
    failed = bool(report.get("errors"))
    for message in report.get("messages", []):
        severity = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}.get(message["severity"], "?")
        print(f"[{severity}] {message['path']}: {message['error']}")
        # "icon is recommended" is the only INFO helm lint has for us.
        if message["severity"] >= 2:
            failed = True
    for error in report.get("errors", []):
        print(f"[ERROR] {error}")
    print(f"helm lint: {report.get('total_charts_linted', 0)} chart(s), {'FAILED' if failed else 'ok'}")
    return 1 if failed else 0


SCHEDULING = ("nodeSelector", "tolerations", "affinity", "priorityClassName", "imagePullSecrets")
GATEWAY_API = "gateway.networking.k8s.io/v1"


def expected_extra_env(values: dict, service: str) -> list[dict]:
    """What the chart appends to a service's env: the top-level extraEnv, a
    service's own entry replacing one of the same name, then the service's."""
    own = values["services"][service].get("extraEnv") or []
    names = {entry["name"] for entry in own}
    return [e for e in values.get("extraEnv") or [] if e["name"] not in names] + list(own)


def check_options(args: argparse.Namespace) -> int:
    import helm_python as helm

    with helm.Chart.load(args.chart) as chart:
        defaults = chart.values
        values = chart.merge_values(load_values(args.values))
    objects = [doc for doc in yaml.safe_load_all(Path(args.rendered).read_text()) if doc]
    problems: list[str] = []

    def need(condition, problem: str) -> None:
        if not condition:
            problems.append(problem)

    def of_kind(kind: str) -> dict[str, dict]:
        return {
            (o["metadata"].get("labels") or {}).get("app.kubernetes.io/component", o["metadata"]["name"]): o
            for o in objects
            if o["kind"] == kind
        }

    # Values that leave an option off would make the checks below vacuous.
    for key in SCHEDULING + ("extraEnv", "extraEnvFrom"):
        need(values.get(key), f"values: {key} is not set, nothing to check")
    need(values["ingress"]["enabled"] and values["httpRoute"]["enabled"], "values: ingress or httpRoute not enabled")
    need(values["migration"]["enabled"], "values: migration not enabled (its Job is checked too)")
    services = values["services"]
    need(any(s.get("extraEnv") for s in services.values()), "values: no services.<name>.extraEnv")
    need(any(s.get("extraEnvFrom") for s in services.values()), "values: no services.<name>.extraEnvFrom")
    changed = [n for n, s in services.items() if s["resources"] != defaults["services"][n]["resources"]]
    need(changed, "values: no services.<name>.resources differs from the chart's default")

    deployments = of_kind("Deployment")
    jobs = of_kind("Job")
    need(set(deployments) == set(services), f"Deployments {sorted(deployments)} != services {sorted(services)}")
    need("migrate" in jobs, "no migration Job")
    config_maps = [o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"]

    # Scheduling and pull secrets: on every pod, the migration Job's too.
    for component, obj in [*deployments.items(), *jobs.items()]:
        pod = obj["spec"]["template"]["spec"]
        for key in SCHEDULING:
            need(pod.get(key) == values[key], f"{obj['kind']}/{obj['metadata']['name']}: {key} is {pod.get(key)!r}")

    for name, obj in sorted(deployments.items()):
        where = f"Deployment/{obj['metadata']['name']}"
        container = obj["spec"]["template"]["spec"]["containers"][0]
        env = container.get("env", [])
        names = [e["name"] for e in env]
        need(len(names) == len(set(names)), f"{where}: an env name twice: {names}")
        extra = expected_extra_env(values, name)
        need(env[len(env) - len(extra) :] == extra, f"{where}: env does not end with extraEnv {[e['name'] for e in extra]}")
        need(
            any("secretKeyRef" in (e.get("valueFrom") or {}) for e in extra),
            f"{where}: no extraEnv entry takes its value from a Secret",
        )
        env_from = container.get("envFrom", [])
        wanted = (values.get("extraEnvFrom") or []) + (services[name].get("extraEnvFrom") or [])
        need(
            len(env_from) == 1 + len(wanted)
            and env_from[0].get("configMapRef", {}).get("name") in config_maps
            and env_from[1:] == wanted,
            f"{where}: envFrom is {env_from}, not the ConfigMap then {wanted}",
        )
        need(container.get("resources") == services[name]["resources"], f"{where}: resources are not services.{name}.resources")
    for obj in jobs.values():
        container = obj["spec"]["template"]["spec"]["containers"][0]
        extra_names = {e["name"] for e in values.get("extraEnv") or []}
        need(
            not extra_names & {e["name"] for e in container.get("env", [])} and "envFrom" not in container,
            f"Job/{obj['metadata']['name']}: got extraEnv or envFrom (only the services do)",
        )

    # The edge: Ingress and HTTPRoute lead to the gateway's Service, port http.
    gateway = of_kind("Service").get("gateway")
    need(gateway, "no gateway Service")
    http_port = next((p for p in (gateway or {}).get("spec", {}).get("ports", []) if p["name"] == "http"), None)
    need(http_port, "the gateway Service has no port named http")
    # -1: no backend can match a port that is not there.
    http_number = (http_port or {}).get("port", -1)
    gateway_name = (gateway or {}).get("metadata", {}).get("name")
    ingresses = [o for o in objects if o["kind"] == "Ingress"]
    need(len(ingresses) == 1, f"{len(ingresses)} Ingresses, not 1")
    for ingress in ingresses:
        spec = ingress["spec"]
        where = f"Ingress/{ingress['metadata']['name']}"
        wanted = values["ingress"]
        need(spec.get("ingressClassName") == (wanted["className"] or None), f"{where}: ingressClassName")
        need(spec.get("tls") == (wanted["tls"] or None), f"{where}: tls is not ingress.tls")
        need(ingress["metadata"].get("annotations") == (wanted["annotations"] or None), f"{where}: annotations")
        rules = spec.get("rules", [])
        need([r.get("host") for r in rules] == [h.get("host") for h in wanted["hosts"]], f"{where}: hosts")
        for rule, host in zip(rules, wanted["hosts"]):
            paths = rule["http"]["paths"]
            expected = [(p["path"], p.get("pathType", "Prefix")) for p in host.get("paths") or [{"path": "/"}]]
            need([(p["path"], p["pathType"]) for p in paths] == expected, f"{where}: paths of {rule.get('host')}")
            for path in paths:
                backend = path["backend"]["service"]
                need(
                    backend["name"] == gateway_name
                    and ((backend["port"].get("name") == "http" and http_port is not None) or backend["port"].get("number") == http_number),
                    f"{where}: backend {backend} is not {gateway_name}:http",
                )
    routes = [o for o in objects if o["kind"] == "HTTPRoute"]
    need(len(routes) == 1, f"{len(routes)} HTTPRoutes, not 1")
    for route in routes:
        where = f"HTTPRoute/{route['metadata']['name']}"
        spec = route.get("spec") or {}
        wanted = values["httpRoute"]
        need(route.get("apiVersion") == GATEWAY_API, f"{where}: apiVersion {route.get('apiVersion')}, not {GATEWAY_API}")
        need(set(route) <= {"apiVersion", "kind", "metadata", "spec"}, f"{where}: unexpected top-level fields")
        need(set(spec) <= {"parentRefs", "hostnames", "rules"}, f"{where}: unknown spec fields {sorted(spec)}")
        need(spec.get("parentRefs") and spec["parentRefs"] == wanted["parentRefs"], f"{where}: parentRefs are not httpRoute.parentRefs")
        for ref in spec.get("parentRefs") or []:
            need(isinstance(ref.get("name"), str) and ref["name"], f"{where}: a parentRef without a name")
        need(spec.get("hostnames") == (wanted["hostnames"] or None), f"{where}: hostnames are not httpRoute.hostnames")
        for hostname in spec.get("hostnames") or []:
            need(re.fullmatch(r"(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", hostname), f"{where}: hostname {hostname!r}")
        need(route["metadata"].get("annotations") == (wanted["annotations"] or None), f"{where}: annotations")
        rules = spec.get("rules") or []
        need(rules, f"{where}: no rules")
        for rule in rules:
            for match in rule.get("matches") or []:
                path = match.get("path") or {}
                need(path.get("type") in ("PathPrefix", "Exact", "RegularExpression"), f"{where}: path match type {path.get('type')}")
                need(str(path.get("value", "/")).startswith("/"), f"{where}: path match value {path.get('value')}")
            refs = rule.get("backendRefs") or []
            need(refs, f"{where}: a rule without backendRefs")
            for ref in refs:
                need(
                    ref.get("group", "") == "" and ref.get("kind", "Service") == "Service",
                    f"{where}: backendRef {ref} is not a core Service",
                )
                need(
                    ref.get("name") == gateway_name and ref.get("port") == http_number,
                    f"{where}: backendRef {ref} is not {gateway_name}:{http_number}",
                )
    if problems:
        print("chart options that did not land:")
        for problem in problems:
            print("  " + problem)
        return 1
    print(
        f"options landed: scheduling and pull secrets on {len(deployments) + len(jobs)} pod templates; extraEnv, "
        f"extraEnvFrom and resources on {len(deployments)} Deployments (own resources: {', '.join(changed)}); "
        f"Ingress and HTTPRoute to {gateway_name}:{http_number}"
    )
    return 0


README_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|([^|]*)\|([^|]*)\|(.*)\|\s*$")
SERVICE_KEY = "services.<name>."


def value_paths(node, prefix: str = "") -> dict[str, object]:
    """Every key of a values tree, dotted, with its value."""
    out: dict[str, object] = {}
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}{key}"
            out[path] = value
            out.update(value_paths(value, path + "."))
    return out


def schema_paths(schema: dict, root: dict, prefix: str = "") -> dict[str, bool]:
    """Every property of the values schema, dotted: {path: has sub-properties}."""
    if "$ref" in schema:
        schema = root["definitions"][schema["$ref"].rsplit("/", 1)[1]]
    out: dict[str, bool] = {}
    for key, sub in (schema.get("properties") or {}).items():
        resolved = root["definitions"][sub["$ref"].rsplit("/", 1)[1]] if "$ref" in sub else sub
        out[prefix + key] = bool(resolved.get("properties"))
        out.update(schema_paths(sub, root, f"{prefix}{key}."))
    return out


def check_helm_readme(args: argparse.Namespace) -> int:
    chart = Path(args.chart)
    values = yaml.safe_load((chart / "values.yaml").read_text())
    schema = json.loads((chart / "values.schema.json").read_text())
    service_names = sorted(values["services"])
    in_values = value_paths(values)
    # `global` is Helm's, for subcharts: not the chart's to document.
    in_schema = {k: v for k, v in schema_paths(schema, schema).items() if k != "global" and not k.startswith("global.")}
    leaves = {k for k, v in in_values.items() if not isinstance(v, dict) or not v}
    leaves |= {k for k, has_children in in_schema.items() if not has_children}

    rows: dict[str, tuple[str, str]] = {}
    problems: list[str] = []
    readme = (chart / "README.md").read_text().splitlines()
    in_table = False
    for number, line in enumerate(readme, 1):
        # The table under the header `| Key | Type | Default | Description |`, up to its end.
        if re.fullmatch(r"\|\s*Key\s*\|\s*Type\s*\|\s*Default\s*\|\s*Description\s*\|", line.strip()):
            in_table = True
            continue
        if in_table and not line.startswith("|"):
            in_table = False
        match = README_ROW.match(line) if in_table else None
        if not match:
            continue
        key, _type, default = match.group(1), match.group(2).strip(), match.group(3).strip()
        if key in rows:
            problems.append(f"README.md:{number}: `{key}` twice")
        rows[key] = (default, f"README.md:{number}")
    if not rows:
        problems.append("README.md: no values table (rows `| `key` | type | default | description |`)")

    documented: set[str] = set()
    for key, (default, where) in rows.items():
        expanded = [key.replace(SERVICE_KEY, f"services.{n}.") for n in service_names] if key.startswith(SERVICE_KEY) else [key]
        for path in expanded:
            if path not in in_values and path not in in_schema:
                problems.append(f"{where}: `{key}` is neither in values.yaml nor in values.schema.json (stale?)")
                break
            documented.add(path)
        else:
            literal = re.fullmatch(r"`([^`]*)`", default)
            if literal:
                wanted = yaml.safe_load(literal.group(1))
                for path in expanded:
                    if in_values.get(path) != wanted:
                        problems.append(f"{where}: `{key}` default {default} but values.yaml has {json.dumps(in_values.get(path))}")
                        break
            elif not key.startswith(SERVICE_KEY):
                problems.append(f"{where}: `{key}`: the default must be a `literal` (values.yaml has {json.dumps(in_values.get(key))})")
    for path in sorted(documented):
        if any(path.startswith(other + ".") for other in documented):
            problems.append(f"`{path}` is documented along with a key above it")
    missing = sorted(
        leaf for leaf in leaves if not any(leaf == d or leaf.startswith(d + ".") for d in documented)
    )
    generic = sorted({re.sub(r"^services\.[^.]+\.", SERVICE_KEY, m) for m in missing})
    for key in generic:
        example = json.dumps(in_values.get(key.replace(SERVICE_KEY, f"services.{service_names[0]}."), None))
        problems.append(f"README.md: `{key}` is not documented; a row: | `{key}` | … | `{example}` | … |")
    if problems:
        print("the chart's README.md and its values disagree:")
        for problem in problems:
            print("  " + problem)
        return 1
    print(f"README.md documents {len(rows)} keys covering all {len(leaves)} keys of values.yaml and values.schema.json")
    return 0


def normalize(obj: dict) -> dict:
    """Drops what only Helm adds; sorts env lists by name."""

    def clean_meta(meta: dict) -> None:
        labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in HELM_ONLY_LABELS}
        annotations = {
            k: v
            for k, v in (meta.get("annotations") or {}).items()
            if not k.startswith(HELM_ONLY_ANNOTATION_PREFIXES)
        }
        meta.pop("labels", None)
        meta.pop("annotations", None)
        if labels:
            meta["labels"] = labels
        if annotations:
            meta["annotations"] = annotations

    obj = json.loads(json.dumps(obj))
    clean_meta(obj.setdefault("metadata", {}))
    template = (obj.get("spec") or {}).get("template")
    if isinstance(template, dict):
        clean_meta(template.setdefault("metadata", {}))
        for container in template.get("spec", {}).get("containers", []):
            if "env" in container:
                container["env"] = sorted(container["env"], key=lambda e: e["name"])
    return obj


def diff(a, b, path="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key not in a:
                out.append(f"{path}.{key}: only in helm: {json.dumps(b[key])[:200]}")
            elif key not in b:
                out.append(f"{path}.{key}: only in kustomize: {json.dumps(a[key])[:200]}")
            else:
                out.extend(diff(a[key], b[key], f"{path}.{key}"))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out.extend(diff(x, y, f"{path}[{i}]"))
        return out
    if a != b:
        return [f"{path}: kustomize {json.dumps(a)[:200]} != helm {json.dumps(b)[:200]}"]
    return []


def index(path: str) -> dict:
    objects = {}
    for doc in yaml.safe_load_all(Path(path).read_text()):
        if not doc:
            continue
        key = (doc["kind"], doc["metadata"]["name"])
        if key in objects:
            raise SystemExit(f"{path}: {key[0]}/{key[1]} twice")
        objects[key] = normalize(doc)
    return objects


def summary(objects: dict) -> str:
    lines = []
    for (kind, name), obj in sorted(objects.items()):
        if kind == "Deployment":
            container = obj["spec"]["template"]["spec"]["containers"][0]
            env = ",".join(e["name"] for e in container.get("env", []))
            env_from = ",".join(
                f"{ref_kind}:{ref['name']}"
                for source in container.get("envFrom", [])
                for ref_kind, ref in source.items()
                if ref_kind in ("configMapRef", "secretRef")
            )
            lines.append(f"  {kind}/{name}: args={container.get('args')} envFrom=[{env_from}] env=[{env}]")
        else:
            lines.append(f"  {kind}/{name}")
    return "\n".join(lines)


def compare(args: argparse.Namespace) -> int:
    kustomize = index(args.kustomize)
    helm = index(args.helm)
    problems = []
    for key in sorted(set(kustomize) - set(helm)):
        problems.append(f"{key[0]}/{key[1]}: only in the kustomize rendering")
    for key in sorted(set(helm) - set(kustomize)):
        problems.append(f"{key[0]}/{key[1]}: only in the helm rendering")
    for key in sorted(set(kustomize) & set(helm)):
        for line in diff(kustomize[key], helm[key]):
            problems.append(f"{key[0]}/{key[1]}{line}")
    if problems:
        print("the kustomize and helm renderings differ:")
        for problem in problems:
            print("  " + problem)
        return 1
    print(f"kustomize and helm describe the same {len(kustomize)} objects:")
    print(summary(kustomize))
    return 0


MACRO = re.compile(r"\b(?:metrics::)?(counter|histogram|gauge)!\(")
TARGET_LABELS = {"namespace", "job", "pod", "instance", "service", "container", "endpoint"}


CATALOG_ROW = re.compile(r"^\| `([a-z_:][a-z0-9_:]*)` \| (counter|gauge|histogram) \| ([^|]*) \|")


def code_metrics(repo: Path) -> dict[str, tuple[str, set[str]]]:
    """{name: (kind, labels)} from every metrics macro under shared/ and services/,
    and from the metrics table of deploy/README.md (the code's catalog, which a Rust
    test keeps equal to it): process metrics come from a collector, not a macro."""
    found: dict[str, tuple[str, set[str]]] = {}
    for line in (repo / "deploy/README.md").read_text().splitlines():
        row = CATALOG_ROW.match(line)
        if row:
            # A label is a name outside the parentheses that list its values.
            labels = set(re.findall(r"`([a-z_][a-z0-9_]*)`", re.sub(r"\([^()]*\)", "", row.group(3))))
            found[row.group(1)] = (row.group(2), labels)
    for path in sorted([*repo.glob("shared/**/*.rs"), *repo.glob("services/**/*.rs")]):
        text = path.read_text()
        for match in MACRO.finditer(text):
            depth, end = 1, match.end()
            while depth and end < len(text):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                end += 1
            call = text[match.end() : end - 1]
            name = re.match(r'\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"', call)
            if not name:
                continue
            labels = set(re.findall(r'"([a-zA-Z_][a-zA-Z0-9_]*)"\s*=>', call))
            kind, known = found.get(name.group(1), (match.group(1), set()))
            found[name.group(1)] = (kind, known | labels)
    return found


def metrics(args: argparse.Namespace) -> int:
    for name, (kind, labels) in sorted(code_metrics(Path(args.repo)).items()):
        print(f"{name}\t{kind}\t{','.join(sorted(labels))}")
    return 0


SELECTOR = re.compile(r"\b(tenantry_[a-z0-9_]+)(\{[^}]*\})?")


def check_expr(expr: str, where: str, known: dict) -> list[str]:
    problems = []
    for match in SELECTOR.finditer(expr):
        name = match.group(1)
        base, extra = name, set()
        kind = known.get(name, (None,))[0]
        for suffix in ("_bucket", "_count", "_sum"):
            if kind is None and name.endswith(suffix) and name[: -len(suffix)] in known:
                base = name[: -len(suffix)]
                kind = known[base][0]
                if kind != "histogram":
                    problems.append(f"{where}: {name}: {base} is a {kind}, not a histogram")
                extra = {"le"} if suffix == "_bucket" else set()
        if kind is None:
            problems.append(f"{where}: {name} is not a metric the code records")
            continue
        allowed = known[base][1] | extra | TARGET_LABELS
        for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", match.group(2) or ""):
            if label not in allowed:
                problems.append(f"{where}: {name} has no label `{label}` (it has {sorted(known[base][1])})")
    return problems


def rule_exprs(groups: list) -> list[tuple[str, str]]:
    return [(rule.get("alert") or rule.get("record"), rule["expr"]) for group in groups for rule in group["rules"]]


def check_observability(args: argparse.Namespace) -> int:
    repo = Path(args.repo)
    known = code_metrics(repo)
    problems: list[str] = []
    prom = repo / "deploy/observability/prometheus"
    rules = yaml.safe_load((prom / "tenantry.rules.yaml").read_text())["groups"]
    crd = yaml.safe_load((prom / "tenantry-alerts.prometheusrule.yaml").read_text())["spec"]["groups"]
    if rules != crd:
        problems.append("tenantry-alerts.prometheusrule.yaml and tenantry.rules.yaml carry different rules")
    for name, expr in rule_exprs(rules):
        problems += check_expr(expr, f"rule {name}", known)
    dashboard = json.loads((repo / "deploy/observability/grafana/tenantry-dashboard.json").read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries.append((panel["title"], target["expr"]))
            problems += check_expr(target["expr"], f"panel {panel['title']!r}", known)
    used = {m.group(1) for _, e in queries + rule_exprs(rules) for m in SELECTOR.finditer(e)}
    if args.promtool:
        # promtool parses PromQL in rule files: check the dashboard's queries
        # as recording rules, Grafana's variables replaced.
        substituted = [
            {"record": f"dashboard:query_{i}", "expr": e.replace("$__rate_interval", "5m").replace("$namespace", ".*")}
            for i, (_, e) in enumerate(queries)
        ]
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
            yaml.safe_dump({"groups": [{"name": "dashboard", "rules": substituted}]}, handle)
        result = subprocess.run([args.promtool, "check", "rules", handle.name], capture_output=True, text=True)
        Path(handle.name).unlink()
        if result.returncode != 0:
            problems.append("dashboard queries do not parse:\n" + result.stdout + result.stderr)
        else:
            print(f"promtool: the dashboard's {len(queries)} queries parse")
    if problems:
        print("observability problems:")
        for problem in problems:
            print("  " + problem)
        return 1
    print(f"rules ({len(rule_exprs(rules))}) and dashboard ({len(queries)} queries) use only metrics the code records:")
    for name in sorted(known):
        print(f"  {'used  ' if any(u == name or u.startswith(name + '_') for u in used) else 'unused'} {name}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("render-helm")
    p.add_argument("chart")
    p.add_argument("values", nargs="*")
    p.add_argument("--out", required=True)
    p.add_argument("--set-json", action="append")
    p.add_argument("--set", action="append")
    p.set_defaults(run=render_helm)
    p = sub.add_parser("reject-helm")
    p.add_argument("chart")
    p.add_argument("values", nargs="*")
    p.add_argument("--set-json", action="append")
    p.add_argument("--set", action="append")
    p.add_argument("--expect", required=True)
    p.set_defaults(run=reject_helm)
    p = sub.add_parser("check-options")
    p.add_argument("chart")
    p.add_argument("rendered")
    p.add_argument("values", nargs="*")
    p.set_defaults(run=check_options)
    p = sub.add_parser("check-helm-readme")
    p.add_argument("chart")
    p.set_defaults(run=check_helm_readme)
    p = sub.add_parser("lint-helm")
    p.add_argument("chart")
    p.add_argument("values", nargs="*")
    p.add_argument("--kube-version", required=True)
    p.set_defaults(run=lint_helm)
    p = sub.add_parser("metrics")
    p.add_argument("repo")
    p.set_defaults(run=metrics)
    p = sub.add_parser("check-observability")
    p.add_argument("repo")
    p.add_argument("--promtool")
    p.set_defaults(run=check_observability)
    p = sub.add_parser("compare")
    p.add_argument("kustomize")
    p.add_argument("helm")
    p.set_defaults(run=compare)
    args = parser.parse_args()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
