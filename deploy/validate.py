"""Helpers of deploy/validate.sh (run with the venv's Python).

  validate.py render-helm CHART VALUES... --out FILE [--set-json JSON]
      renders the chart offline (Helm's Go SDK via helm-python-sdk) as the
      release `tenantry`, into one multi-document YAML file
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


def render_helm(args: argparse.Namespace) -> int:
    import helm_python as helm

    values = load_values(args.values)
    for extra in args.set_json or []:
        values = deep_merge(values, json.loads(extra))
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


def code_metrics(repo: Path) -> dict[str, tuple[str, set[str]]]:
    """{name: (kind, labels)} from every metrics macro under shared/ and services/."""
    found: dict[str, tuple[str, set[str]]] = {}
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
    p.set_defaults(run=render_helm)
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
