"""Generates the protobuf and gRPC modules of the `tenantry` package at build time.

Input: the contracts under `proto/tenantry` (from an sdist) or `../../proto/tenantry` (the
repository). Output, with grpcio-tools' protoc: `*_pb2.py` (messages), `*_pb2.pyi` (their
type stubs), `*_pb2_grpc.py` (stubs and servicers), and with mypy-protobuf's grpc plugin
`*_pb2_grpc.pyi` (typed sync and asyncio stubs). `proto/google` (vendored googleapis) is on
the include path only to resolve imports: at run time `google.api` and `google.rpc` come
from googleapis-common-protos. Nothing generated is kept in git.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def find_protos(root: Path) -> Path:
    for candidate in (root / "proto", root.parent.parent / "proto"):
        if (candidate / "tenantry").is_dir():
            return candidate
    raise RuntimeError(f"no Tenantry contracts (proto/tenantry) in {root} or two levels above")


def generate(protos: Path, out: Path) -> None:
    """Runs protoc over every tenantry .proto into `out` and makes each folder a package."""
    files = sorted(str(p.relative_to(protos)) for p in (protos / "tenantry").rglob("*.proto"))
    with tempfile.TemporaryDirectory() as scratch:
        plugin = Path(scratch) / "protoc-gen-mypy_grpc"
        plugin.write_text(f"#!{sys.executable}\nfrom mypy_protobuf.main import grpc\ngrpc()\n")
        plugin.chmod(0o755)
        command = [
            sys.executable, "-m", "grpc_tools.protoc", f"-I{protos}",
            f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}",
            f"--plugin=protoc-gen-mypy_grpc={plugin}", f"--mypy_grpc_out=quiet:{out}",
            *files,
        ]  # fmt: skip
        subprocess.run(command, cwd=protos, check=True)
    for folder in (out / "tenantry").rglob("*"):
        if folder.is_dir():
            (folder / "__init__.py").touch()


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: Dict[str, Any]) -> None:
        root = Path(self.root)
        protos = find_protos(root)
        if version == "editable":
            # An editable install imports src/ directly: generate there (git-ignored).
            generate(protos, root / "src")
            return
        out = Path(tempfile.mkdtemp(prefix="tenantry-generated-"))
        self._generated = out
        generate(protos, out)
        for package in sorted((out / "tenantry").iterdir()):
            build_data["force_include"][str(package)] = f"tenantry/{package.name}"

    def finalize(self, version: str, build_data: Dict[str, Any], artifact_path: str) -> None:
        generated = getattr(self, "_generated", None)
        if generated is not None:
            shutil.rmtree(generated, ignore_errors=True)
