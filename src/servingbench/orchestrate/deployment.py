"""Deploying one model on one framework (package, pick ports, launch, wait until ready), and the
evidence of what serving took: the packaged files, cold start, memory at idle."""
from __future__ import annotations

import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

from servingbench.adapters.base import Adapter, Artifact
from servingbench.launch.containers import containerised
from servingbench.launch.contracts import LaunchSpec, Ports
from servingbench.launch.ports import free_ports
from servingbench.launch.server import RunningServer, running_server
from servingbench.models.base import LoadedModel, ModelSpec

SERVER_LOG = "server.log"


@dataclass(frozen=True)
class Deployed:
    """A model served by a framework and ready for requests."""

    adapter: Adapter
    model: ModelSpec
    artifact: Artifact
    launch: LaunchSpec
    ports: Ports
    server: RunningServer
    run_dir: Path

    def scrape_metrics(self) -> dict[str, float]:
        return self.adapter.scrape_metrics(self.launch, self.ports)


@contextmanager
def deployed(adapter: Adapter, model: ModelSpec, loaded: LoadedModel, run_dir: Path, startup_timeout_s: float,
             ports: Ports | None = None, on_packaged: Callable[[Artifact], None] | None = None) -> Iterator[Deployed]:
    """Package `model` for `adapter` in `run_dir`, start the server on free loopback ports (or `ports`), wait
    until it is ready; stop it on the way out. `on_packaged` sees the artifact before the launch (evidence
    that survives a server that never gets ready)."""
    run_dir = run_dir.resolve()  # the server runs in its own folder: every path it gets must be absolute
    artifact = adapter.package(model, loaded, run_dir)
    ports = ports or Ports.of(free_ports(Ports.COUNT))
    launch = adapter.launch_spec(artifact, ports, run_dir)  # writes the server's config files next to it
    # the study's GPU alone, or none (devices.py), whatever the framework
    launch = replace(launch, env={**launch.env, **adapter.placement.server_env()})
    if adapter.container:  # the same launch, in the framework's image; the artifact bound read-only
        launch = containerised(launch, adapter.container, read_only=(artifact.path,))
    if on_packaged:
        on_packaged(artifact)
    with running_server(launch, run_dir / SERVER_LOG, f"{adapter.name} server", startup_timeout_s) as server:
        yield Deployed(adapter, model, artifact, launch, ports, server, run_dir)

# What a person writes or edits to serve a model (configs, handlers), as opposed to weights and vocabularies.
HAND_WRITTEN = {".py", ".pbtxt", ".properties", ".yaml", ".yml", ".sh"}
CONFIG_FILES = ("*.properties", "*.pbtxt", "*.yaml")  # launch configs written next to the artifact


def package_stats(artifact: Artifact, run_dir: Path) -> tuple[int, int, int]:
    """(files, bytes, lines of hand-written-kind files) of the artifact plus its launch configs."""
    files = bytes_ = lines = 0
    entries: list[tuple[str, bytes | None, int]] = []  # (name, content if hand-written kind, size)
    paths = [artifact.path] if artifact.path.is_file() else sorted(p for p in artifact.path.rglob("*") if p.is_file())
    paths += [p for pattern in CONFIG_FILES for p in run_dir.glob(pattern)]
    for path in paths:
        if zipfile.is_zipfile(path) and path.suffix == ".mar":
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    wanted = Path(info.filename).suffix in HAND_WRITTEN
                    entries.append((info.filename, archive.read(info) if wanted else None, info.file_size))
        else:
            wanted = path.suffix in HAND_WRITTEN
            entries.append((path.name, path.read_bytes() if wanted else None, path.stat().st_size))
    for _, content, size in entries:
        files += 1
        bytes_ += size
        if content is not None:
            lines += content.count(b"\n")
    return files, bytes_, lines
