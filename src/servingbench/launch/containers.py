"""Container runtimes (docker, podman, apptainer): the same LaunchSpec, started inside an image.

`containerised` wraps a launch description without knowing the framework. The run folder, the
artifact and the server's scratch folders are bound at the SAME absolute path inside the image, so
every path in argv and env stays valid; the artifact read-only, the run folder and scratch folders
writable (the server writes its logs, temp files and generated configs there, and nowhere else).
The host's executables (a virtual environment's python or console scripts, a binary's path) do not
exist in an image: argv[0] becomes the image's command of that name, every Python interpreter
`python3`. The host's PATH and LD_LIBRARY_PATH stay outside: the image has its own.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from servingbench.errors import ServingbenchError
from servingbench.launch.contracts import _PIECES, LaunchSpec

CONTAINER_RUNTIMES = ("docker", "podman", "apptainer")
HOST_SEARCH_PATHS = ("PATH", "LD_LIBRARY_PATH")  # the host's; the image's own apply inside
# Passed into an apptainer container even with --cleanenv, each without its prefix. Unlike `--env K=V`, whose
# list syntax splits at commas, this keeps values such as Ray's comma-separated latency buckets whole.
APPTAINER_ENV_PREFIX = "APPTAINERENV_"
_PYTHON = re.compile(r"python[0-9.]*")


@dataclass(frozen=True)
class Container:
    """How to run a server in a container: the runtime, the image as that runtime names it, GPUs or not."""

    runtime: str  # docker | podman | apptainer
    image: str  # docker/podman: a registry name; apptainer: a .sif path or docker://name
    gpus: bool = False

    def __str__(self) -> str:
        return f"{self.runtime} {self.image}"


def find_runtime(wanted: str | None) -> str | None:
    """The runtime asked for, or the first one installed."""
    return next((r for r in ([wanted] if wanted else CONTAINER_RUNTIMES) if shutil.which(r)), None)


def runtime_problem(wanted: str | None) -> str | None:
    """Why no container can run here, or None."""
    runtime = find_runtime(wanted)
    if runtime is None:
        return f"{wanted} is not installed (not on PATH)" if wanted else \
            f"no container runtime ({', '.join(CONTAINER_RUNTIMES)}) is installed"
    if runtime == "docker" and subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode:
        return "docker is installed but its engine is not running (or not reachable)"
    return None


def image_reference(runtime: str, image: str) -> str:
    """`image` as `runtime` takes it: apptainer a .sif file (absolute) or a docker:// URI, docker and podman
    a registry name."""
    if image.endswith(".sif"):
        if runtime != "apptainer":
            raise ServingbenchError(f"{runtime} can't run the Apptainer image {image}: use apptainer, or a "
                                    "registry image")
        return str(Path(image).expanduser().resolve())
    if runtime == "apptainer":
        return image if "://" in image else f"docker://{image}"
    return image.removeprefix("docker://")


def image_command(executable: str) -> str:
    """A host executable as the image names it: its name on the image's PATH; any Python is python3."""
    name = Path(executable).name
    return "python3" if _PYTHON.fullmatch(name) else name


def containerised(spec: LaunchSpec, container: Container, read_only: tuple[Path, ...]) -> LaunchSpec:
    """`spec` run by `container.runtime` in `container.image`; `read_only` (the artifact) bound read-only, the
    working folder and scratch folders writable. Nothing to start (an external server): `spec` as it is."""
    if spec.argv is None:
        return spec
    if spec.cwd is None:
        raise ServingbenchError("a server in a container needs a working folder to bind (the launch has none)")
    writable = tuple(dict.fromkeys((spec.cwd, *spec.scratch_dirs)))
    env = {name: value for name, value in spec.env.items() if name not in HOST_SEARCH_PATHS}
    command = (image_command(spec.argv[0]), *spec.argv[1:])
    _check_bound(command[1:], list(env.values()), (*writable, *read_only))
    if container.runtime == "apptainer":
        binds = [arg for path in writable for arg in ("--bind", f"{path}:{path}")]
        binds += [arg for path in read_only for arg in ("--bind", f"{path}:{path}:ro")]
        # --contain: an empty /tmp and $HOME of its own instead of the host's, and --cleanenv: only the launch's
        # variables, as docker and podman give the server; apptainer shares the host's network as they do here.
        argv = ["apptainer", "exec", "--contain", "--cleanenv", "--pwd", str(spec.cwd), *binds,
                *(["--nv"] if container.gpus else []), container.image, *command]
        return dataclasses.replace(spec, argv=tuple(argv),
                                   env={f"{APPTAINER_ENV_PREFIX}{name}": value for name, value in env.items()})
    volumes = [arg for path in writable for arg in ("-v", f"{path}:{path}")]
    volumes += [arg for path in read_only for arg in ("-v", f"{path}:{path}:ro")]
    # As this user (docker: --user; rootless podman: keep-id), so that what the server writes into the run folder
    # stays removable by servingbench; HOME in the writable folder, since that user has none in the image.
    user = ["--user", f"{os.getuid()}:{os.getgid()}"] if container.runtime == "docker" else ["--userns=keep-id"]
    gpus = (["--gpus", "all"] if container.runtime == "docker" else ["--device", "nvidia.com/gpu=all"]) \
        if container.gpus else []
    variables = [arg for name, value in {**env, "HOME": str(spec.cwd)}.items() for arg in ("-e", f"{name}={value}")]
    # The command as the entrypoint: an image's own (TF Serving's start script, ...) would take it as arguments.
    argv = [container.runtime, "run", "--rm", "--init", "--network=host", *user, "-w", str(spec.cwd), *volumes,
            *gpus, *variables, "--entrypoint", command[0], container.image, *command[1:]]
    return dataclasses.replace(spec, argv=tuple(argv), env={})


def _check_bound(args: tuple[str, ...], values: list[str], bound: tuple[Path, ...]) -> None:
    """Every host file or folder the server is told about must be inside a bound folder, else the server would
    not find it in the image: fail now, naming it, instead of a server that never gets ready."""
    unbound = sorted({piece for text in (*args, *values) for piece in _PIECES.split(text)
                      if piece.startswith("/") and Path(piece).exists()
                      and not any(Path(piece).resolve().is_relative_to(b.resolve()) for b in bound)})
    if unbound:
        raise ServingbenchError(f"the server in the container would not see {', '.join(unbound)}: only the run "
                                f"folder, the artifact and scratch folders are bound ({', '.join(map(str, bound))})")


def image_digest(container: Container) -> str | None:
    """The image's content digest: a .sif file's sha256, or the registry digest docker/podman know it by
    (RepoDigests); None when it can't be had (not pulled yet, no engine), never an error."""
    if container.image.endswith(".sif"):
        path = Path(container.image)
        if not path.is_file():
            return None
        digest = hashlib.sha256()
        with path.open("rb") as image:
            while chunk := image.read(2**20):
                digest.update(chunk)
        return f"sha256:{digest.hexdigest()}"
    if container.runtime == "apptainer" or shutil.which(container.runtime) is None:
        return None  # a docker:// image is pulled into apptainer's cache: no digest to ask for
    try:
        done = subprocess.run([container.runtime, "image", "inspect", "--format", "{{json .RepoDigests}}",
                               container.image], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    try:
        digests = json.loads(done.stdout) if done.returncode == 0 else None
    except ValueError:
        return None
    return digests[0] if digests else None  # an image built here and never pushed has none
