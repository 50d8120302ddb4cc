"""A rehearsal of a rendered deployment on this machine (deploy/validate.sh,
when a built `tenantry` binary, PostgreSQL and NATS are at hand).

It takes the Job and Deployments of a rendered overlay exactly as Kubernetes
would run them (args, the ConfigMap, env, Secret references filled from
--secret KEY=VALUE), moves only the listen addresses and peer URLs onto
loopback ports, and then: runs the migration Job's command; starts one
process per Deployment; asks each one what its probes ask (gRPC health with
the probe's service name, or the gateway's /readyz and /healthz); signs up a
user and reads /v1/me through the gateway (gateway → identity → organization
→ rbac → billing); stops every process with SIGTERM and expects exit 0 within
terminationGracePeriodSeconds.

  python smoke.py RENDERED.yaml --bin target/release/tenantry \
      --secret database-url=postgres://… --secret nats-url=nats://… …
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def container_env(pod_spec: dict, configmaps: dict, secrets: dict) -> dict:
    container = pod_spec["containers"][0]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]])
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            if ref["key"] not in secrets:
                if ref.get("optional"):
                    continue
                raise SystemExit(f"no --secret for {ref['key']} (needed by {entry['name']})")
            env[entry["name"]] = secrets[ref["key"]]
    return env


def health(port: int, service: str) -> str:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        except grpc.RpcError as error:
            return error.code().name
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def http(method: str, url: str, body: dict | None = None, token: str | None = None) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if body is not None:
        request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:
        return 0, str(error)


def delete_nats_stream(url: str, stream: str) -> None:
    """Best effort: removes the smoke test's JetStream stream (plain NATS
    protocol, no client library)."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout=5) as sock:
            sock.recv(4096)  # INFO
            sock.sendall(
                b'CONNECT {"verbose":false,"pedantic":false}\r\n'
                b"SUB _INBOX.smoke 1\r\n"
                + f"PUB $JS.API.STREAM.DELETE.{stream} _INBOX.smoke 0\r\n\r\n".encode()
                + b"PING\r\n"
            )
            reply = b""
            while b"MSG _INBOX.smoke" not in reply and len(reply) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
    except OSError as error:
        print(f"could not delete the NATS stream {stream}: {error}")


def mailed_token(work, to, kind):
    """The token of the newest mail of `kind` to `to` in any process's mail directory."""
    for path in sorted(work.glob(f"*/mail/*{kind}*"), key=lambda p: p.name, reverse=True):
        lines = path.read_text().splitlines()
        if f"To: {to}" in lines:
            for line in lines:
                if line.startswith("token: "):
                    return line[len("token: "):]
    return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("rendered")
    parser.add_argument("--bin", required=True)
    parser.add_argument("--secret", action="append", default=[], help="KEY=VALUE of tenantry-secrets")
    args = parser.parse_args()
    secrets = dict(item.split("=", 1) for item in args.secret)

    docs = [d for d in yaml.safe_load_all(Path(args.rendered).read_text()) if d]
    configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    jobs = [d for d in docs if d["kind"] == "Job"]
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}

    ports = {name: (free_port(), free_port()) for name in deployments}
    # Service DNS name → the loopback gRPC port of the Deployment it selects.
    peer_urls = {}
    for name, svc in services.items():
        for dep_name, dep in deployments.items():
            labels = dep["spec"]["template"]["metadata"]["labels"]
            if all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()):
                peer_urls[f"http://{name}:50051"] = f"http://127.0.0.1:{ports[dep_name][0]}"
    work = Path(tempfile.mkdtemp(prefix="tenantry-smoke-"))
    namespace = "smoke_" + uuid.uuid4().hex[:8]
    failures: list[str] = []

    def local(env: dict, name: str) -> dict:
        out = dict(os.environ)
        out.update(env)
        grpc_port, http_port = ports.get(name, (free_port(), free_port()))
        out["TENANTRY_GRPC_ADDR"] = f"127.0.0.1:{grpc_port}"
        out["TENANTRY_HTTP_ADDR"] = f"127.0.0.1:{http_port}"
        out["TENANTRY_DATA_DIR"] = str(work / name)
        out["TENANTRY_NATS_NAMESPACE"] = namespace
        for key, value in env.items():
            if key.startswith("TENANTRY_PEERS__"):
                out[key] = peer_urls.get(value, value)
        # No collector here: keep traces local.
        out.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        return out

    for job in jobs:
        spec = job["spec"]["template"]["spec"]
        env = local(container_env(spec, configmaps, secrets), job["metadata"]["name"])
        command = [args.bin, *spec["containers"][0]["args"]]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        status = "ok" if result.returncode == 0 else f"FAILED ({result.returncode})"
        print(f"job {job['metadata']['name']}: {' '.join(command[1:])}: {status}")
        if result.returncode != 0:
            print(result.stderr[-2000:])
            return 1

    processes = {}
    try:
        for name, dep in deployments.items():
            spec = dep["spec"]["template"]["spec"]
            env = local(container_env(spec, configmaps, secrets), name)
            log = open(work / f"{name}.log", "w")
            processes[name] = (
                subprocess.Popen([args.bin, *spec["containers"][0]["args"]], env=env, stdout=log, stderr=log),
                log,
            )
        # Probes, until the startup probes' budget runs out.
        for name, dep in deployments.items():
            container = dep["spec"]["template"]["spec"]["containers"][0]
            grpc_port, http_port = ports[name]
            startup = container["startupProbe"]
            deadline = time.time() + startup["periodSeconds"] * startup["failureThreshold"]
            checks = []
            for probe_name in ("readinessProbe", "livenessProbe"):
                probe = container[probe_name]
                if "grpc" in probe:
                    checks.append((probe_name, "grpc", probe["grpc"].get("service", "")))
                else:
                    checks.append((probe_name, "http", probe["httpGet"]["path"]))
            for probe_name, kind, target in checks:
                while True:
                    if kind == "grpc":
                        answer = health(grpc_port, target)
                        ok = answer == "SERVING"
                    else:
                        code, _ = http("GET", f"http://127.0.0.1:{http_port}{target}")
                        answer, ok = str(code), code == 200
                    if ok or time.time() > deadline or processes[name][0].poll() is not None:
                        break
                    time.sleep(0.5)
                print(f"{name}: {probe_name} {kind} {target!r}: {answer}")
                if not ok:
                    failures.append(f"{name} {probe_name}")
        if not failures:
            gateway = next(n for n in deployments if n.endswith("-gateway"))
            base = f"http://127.0.0.1:{ports[gateway][1]}"
            email = f"smoke-{uuid.uuid4().hex[:8]}@example.com"
            code, body = http(
                "POST",
                f"{base}/v1/auth/signup",
                {"email": email, "password": "correct horse battery staple", "displayName": "Smoke"},
            )
            print(f"gateway: POST /v1/auth/signup: {code}")
            answer = json.loads(body) if code == 200 else {}
            if answer.get("verificationRequired"):
                # The account comes from the link mailed to the address (the
                # `log` mailer writes it into the identity process's data
                # directory).
                link = mailed_token(work, email, "verify_email")
                code, body = http("POST", f"{base}/v1/auth/email:verify", {"token": link or ""})
                print(f"gateway: POST /v1/auth/email:verify: {code}")
                answer = json.loads(body) if code == 200 else {}
            token = answer.get("tokens", {}).get("accessToken")
            if not token:
                failures.append(f"signup through the gateway: {code} {body[:300]}")
            else:
                # A process that started before identity answered may have
                # failed its first key-set fetch; it fetches again on an
                # unknown key id, at most every auth.jwks_min_refresh_secs (5).
                started = time.time()
                while True:
                    code, body = http("GET", f"{base}/v1/me", token=token)
                    if code != 401 or time.time() - started > 20:
                        break
                    time.sleep(1)
                print(f"gateway: GET /v1/me: {code} (after {time.time() - started:.0f} s)")
                if code != 200:
                    failures.append(f"/v1/me through the gateway: {code} {body[:300]}")
                code, body = http("GET", f"{base}/v1/organizations", token=token)
                print(f"gateway: GET /v1/organizations: {code}")
                if code != 200:
                    failures.append(f"/v1/organizations through the gateway: {code} {body[:300]}")
    finally:
        for name, (process, log) in processes.items():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, (process, log) in processes.items():
            grace = deployments[name]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            try:
                code = process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                code = "killed after the grace period"
            log.close()
            print(f"{name}: SIGTERM → exit {code}")
            if code != 0:
                failures.append(f"{name} exit {code}")
    if "nats-url" in secrets:
        delete_nats_stream(secrets["nats-url"], f"TENANTRY_EVENTS_{namespace.upper()}")
    if failures:
        print("smoke test FAILED: " + "; ".join(failures) + f" (logs in {work})")
        for name in processes:
            print(f"--- {name} log (tail)")
            print("\n".join((work / f"{name}.log").read_text().splitlines()[-15:]))
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print("smoke test ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
