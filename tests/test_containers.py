"""Containers: every framework's server command line for docker, podman and apptainer checked field by field,
the image definition files `servingbench images` writes, and whole studies whose reference server runs through
a fake runtime that records its command line and then runs the inner command on this host (no docker engine,
podman or apptainer on the build machine)."""
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from conftest import processes_mentioning, run_cli
from servingbench.adapters import adapter_class, adapter_names, get_adapter
from servingbench.adapters.base import Artifact
from servingbench.config import load_study
from servingbench.errors import ServingbenchError
from servingbench.launch.containers import Container, containerised, image_digest
from servingbench.launch.contracts import Ports

VERSION = "0.1.0"
# The command each framework's server runs in its image: every Python interpreter is the image's python3, a
# console script or binary its name on the image's PATH.
IMAGE_COMMANDS = {"reference": "python3", "fastapi": "python3", "rayserve": "python3", "bentoml": "python3",
                  "litserve": "python3", "kserve": "python3", "mlserver": "mlserver", "mlflow": "mlflow",
                  "torchserve": "torchserve", "triton": "tritonserver", "tfserving": "tensorflow_model_server"}
OFFICIAL = {"triton": "nvcr.io/nvidia/tritonserver:24.10-py3", "tfserving": "tensorflow/serving:2.19.0"}
# servingbench's extras and the pins installed after it, per framework image.
EXTRAS = {"reference": "models", "fastapi": "models,fastapi", "rayserve": "models,rayserve",
          "bentoml": "models,bentoml", "litserve": "models,litserve", "torchserve": "models,torchserve",
          "kserve": "models", "mlserver": "models", "mlflow": "models"}
PINS = {"kserve": "kserve==0.21.0", "mlserver": "mlserver==1.7.1 'uvloop<0.22'", "mlflow": "mlflow==3.17.2"}
HOST_PATHS = ("PATH", "LD_LIBRARY_PATH")


def containerisable() -> list[str]:
    return [n for n in adapter_names() if adapter_class(n).runs_servingbench_code or adapter_class(n).container_image]


def test_every_framework_that_starts_a_server_is_covered():
    assert sorted(containerisable()) == sorted(IMAGE_COMMANDS)
    assert sorted(n for n in containerisable() if adapter_class(n).runs_servingbench_code) == sorted(EXTRAS)
    assert {n: adapter_class(n).container_image for n in OFFICIAL} == OFFICIAL


@pytest.fixture
def fake_runtimes(tmp_path, monkeypatch):
    """docker, podman and apptainer executables that answer every call with success (`docker info` included)."""
    fake_bin = tmp_path / "fake_bin"
    fake_bin.mkdir()
    for runtime in ("docker", "podman", "apptainer"):
        (fake_bin / runtime).write_text("#!/bin/sh\nexit 0\n")
        (fake_bin / runtime).chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    return fake_bin


def pairs(argv: list[str], flag: str) -> list[str]:
    """The values given to `flag` (repeatable) in argv."""
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag]


def boxed_launch(name: str, runtime: str, tmp_path: Path, gpus: bool = False):
    """(adapter, artifact, run folder, the host launch, the containerised launch) of one framework."""
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    (images / f"{name}.sif").write_bytes(b"sif")  # apptainer's built image must exist
    container = {"runtime": runtime, "image_dir": str(images), "gpus": gpus}
    options = {"triton": {"backend": "pytorch"}} if name == "triton" else {}
    adapter = get_adapter(name, load_study("smoke", {"server.container": container, "server.options": options}))
    run_dir = tmp_path / "run" / name
    artifact = Artifact(name, "resnet50", run_dir / "artifact")
    artifact.path.mkdir(parents=True)
    launch = adapter.launch_spec(artifact, Ports(18000, 18001, 18002, (18003, 18004)), run_dir)
    return adapter, artifact, run_dir, launch, containerised(launch, adapter.container, (artifact.path,))


def expected_image(name: str, runtime: str, tmp_path: Path) -> str:
    if name in OFFICIAL:
        return f"docker://{OFFICIAL[name]}" if runtime == "apptainer" else OFFICIAL[name]
    return str(tmp_path / "images" / f"{name}.sif") if runtime == "apptainer" else f"servingbench-{name}:{VERSION}"


@pytest.mark.parametrize("runtime", ["docker", "podman", "apptainer"])
@pytest.mark.parametrize("name", sorted(IMAGE_COMMANDS))
def test_container_command_line_field_by_field(name, runtime, tmp_path, fake_runtimes):
    adapter, artifact, run_dir, launch, boxed = boxed_launch(name, runtime, tmp_path)
    try:
        image_at = list(boxed.argv).index(expected_image(name, runtime, tmp_path))
        argv, inner = list(boxed.argv[:image_at]), list(boxed.argv[image_at + 1:])  # the runtime's, the server's
        inner_args = list(launch.argv[1:])  # everything after the executable passes unchanged
        server_env = {k: v for k, v in launch.env.items() if k not in HOST_PATHS}
        writable = {str(run_dir), *map(str, launch.scratch_dirs)}
        assert adapter.availability().ok, adapter.availability().reason
        if runtime == "apptainer":
            assert argv[:4] == ["apptainer", "exec", "--contain", "--cleanenv"]
            assert pairs(argv, "--pwd") == [str(run_dir)]
            assert set(pairs(argv, "--bind")) == {f"{p}:{p}" for p in writable} | {f"{artifact.path}:{artifact.path}:ro"}
            assert "--nv" not in argv
            assert inner == [IMAGE_COMMANDS[name], *inner_args]
            # the server's variables reach it through APPTAINERENV_ (kept by --cleanenv), the host's PATH does not
            assert boxed.env == {f"APPTAINERENV_{k}": v for k, v in server_env.items()}
        else:
            assert argv[:5] == [runtime, "run", "--rm", "--init", "--network=host"]
            assert (pairs(argv, "--user") == [f"{os.getuid()}:{os.getgid()}"] if runtime == "docker"
                    else "--userns=keep-id" in argv)
            assert pairs(argv, "-w") == [str(run_dir)]
            assert set(pairs(argv, "-v")) == {f"{p}:{p}" for p in writable} | {f"{artifact.path}:{artifact.path}:ro"}
            assert "--gpus" not in argv and "--device" not in argv
            assert pairs(argv, "-e") == [f"{k}={v}" for k, v in {**server_env, "HOME": str(run_dir)}.items()]
            assert pairs(argv, "--entrypoint") == [IMAGE_COMMANDS[name]]
            assert inner == inner_args
            assert boxed.env == {}
        # every host path the server is told about lies in a bound folder, under the same path
        bound = [run_dir, artifact.path, *launch.scratch_dirs]
        for value in [*inner_args, *server_env.values()]:
            for piece in value.replace("=", ":").split(":"):
                if piece.startswith(str(tmp_path)) or piece.startswith("/tmp/servingbench-"):
                    assert any(Path(piece).is_relative_to(b) for b in bound), piece
        assert (boxed.ready_url, boxed.base_url, boxed.cwd) == (launch.ready_url, launch.base_url, launch.cwd)
    finally:
        for scratch in launch.scratch_dirs:
            shutil.rmtree(scratch, ignore_errors=True)


@pytest.mark.parametrize("runtime,flags", [("docker", ["--gpus", "all"]), ("podman", ["--device", "nvidia.com/gpu=all"]),
                                           ("apptainer", ["--nv"])])
def test_gpus_are_handed_to_the_container(runtime, flags, tmp_path, fake_runtimes):
    *_, launch, boxed = boxed_launch("triton", runtime, tmp_path, gpus=True)
    argv = list(boxed.argv)
    start = argv.index(flags[0])
    assert argv[start:start + len(flags)] == flags
    assert argv.index(flags[0]) < argv.index(expected_image("triton", runtime, tmp_path))


def test_triton_and_tfserving_read_their_files_at_the_host_paths(tmp_path, fake_runtimes):
    _, artifact, run_dir, launch, boxed = boxed_launch("triton", "docker", tmp_path)
    assert f"--model-repository={artifact.path}" in boxed.argv and "--backend-directory" not in " ".join(boxed.argv)
    _, artifact, run_dir, launch, boxed = boxed_launch("tfserving", "apptainer", tmp_path)
    config = (run_dir / "tfserving" / "models.config").read_text()
    assert f'base_path: "{artifact.path / "resnet50"}"' in config  # the models folder is bound at its own path
    assert f"--model_config_file={run_dir / 'tfserving' / 'models.config'}" in boxed.argv


def test_bad_images_and_unbound_paths_fail_with_a_clear_error(tmp_path, fake_runtimes):
    def study(container):
        return load_study("smoke", {"server.container": container})

    with pytest.raises(ServingbenchError, match=r"no image .*reference\.sif.*servingbench images reference"):
        get_adapter("reference", study({"runtime": "apptainer", "image_dir": str(tmp_path / "none")}))
    with pytest.raises(ServingbenchError, match="docker can't run the Apptainer image"):
        get_adapter("reference", study({"runtime": "docker", "images": {"reference": "x.sif"}}))
    boxed = get_adapter("triton", study({"runtime": "docker", "images": {"triton": "docker://my/triton:1"}}))
    assert boxed.container == Container("docker", "my/triton:1")
    assert get_adapter("endpoint", study({"runtime": "docker"})).container is None  # it starts no server
    # a host file outside the bound folders would be missing in the image: named before anything starts
    adapter, artifact, run_dir, launch, _ = boxed_launch("reference", "docker", tmp_path)
    outside = tmp_path / "elsewhere.json"
    outside.write_text("{}")
    import dataclasses
    with pytest.raises(ServingbenchError, match=f"would not see {outside}"):
        containerised(dataclasses.replace(launch, argv=(*launch.argv, f"--config={outside}")), adapter.container,
                      (artifact.path,))


def test_run_with_an_absent_runtime_fails_at_once(tmp_path, monkeypatch):
    bare = tmp_path / "bare_bin"  # this Python only: no docker, podman or apptainer on PATH
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))
    done = run_cli("run", "smoke", "--container", "apptainer", "--out", "out", cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "server.container: apptainer is not installed" in done.stderr
    assert not (tmp_path / "out").exists()  # nothing was started or written
    done = run_cli("serve", "reference", "resnet50", "--container", "docker", cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and "server.container: docker is not installed" in done.stderr, done.stderr


def read_sections(text: str) -> dict[str, list[str]]:
    """An Apptainer definition file: its header lines under "", then each %section's lines, comments left out."""
    sections: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        if line.startswith("%"):
            current = line[1:].strip()
            sections[current] = []
        elif line.strip() and not line.startswith("#"):
            sections[current].append(line.strip())
    return sections


def test_images_command_writes_a_definition_per_framework_field_by_field(tmp_path):
    done = run_cli("images", "--out", "images", cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    source = Path(__file__).resolve().parents[1]
    written = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert written == sorted([f"{n}.def" for n in EXTRAS] + [f"{n}.Dockerfile" for n in EXTRAS])
    for name in EXTRAS:
        sections = read_sections((tmp_path / "images" / f"{name}.def").read_text())
        assert sections[""] == ["Bootstrap: docker", "From: python:3.11-slim"]
        assert sections["files"] == [f"{source / f} /opt/servingbench/{f}" for f in ("pyproject.toml", "README.md", "src")]
        pip = "python3 -m pip install --no-cache-dir"
        post = [f"{pip} torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu",
                f"{pip} '/opt/servingbench[{EXTRAS[name]}]'", *([f"{pip} {PINS[name]}"] if name in PINS else [])]
        if name == "torchserve":  # its Java frontend
            post.insert(0, "apt-get update && apt-get install -y --no-install-recommends openjdk-17-jre-headless "
                           "&& rm -rf /var/lib/apt/lists/*")
        assert sections["post"] == ["set -e", *post]
        labels = dict(line.split(" ", 1) for line in sections["labels"])
        assert labels["org.servingbench.framework"] == name and labels["org.servingbench.version"] == VERSION
        assert labels.get("org.servingbench.official-image") == adapter_class(name).container_image
        assert sections["runscript"] == ['exec "$@"']
        docker = [line for line in (tmp_path / "images" / f"{name}.Dockerfile").read_text().splitlines()
                  if line and not line.startswith("#")]
        assert docker[0] == "FROM python:3.11-slim"
        assert docker[1:4] == [f"COPY {f} /opt/servingbench/{f}" for f in ("pyproject.toml", "README.md", "src")]
        assert docker[4:-1] == [f"RUN {line}" for line in post]  # the same steps as the definition file
        assert docker[-1].startswith(f'LABEL org.servingbench.framework="{name}"')
        assert (f"{name}: apptainer build {Path('images') / f'{name}.sif'} {Path('images') / f'{name}.def'}"
                in done.stdout)
        assert f"docker build -f images/{name}.Dockerfile -t servingbench-{name}:{VERSION} {source}" in done.stdout
    assert "triton: runs from its official image nvcr.io/nvidia/tritonserver:24.10-py3" in done.stdout


FAKE_RUNTIME = '''#!{python}
"""fake_{runtime}: records its argv, then runs the inner command on this host as the image would: in the
working folder it was given, with only the variables it was given (python3 is this environment's)."""
import json, os, sys

args = sys.argv[1:]
with open({log!r}, "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[0] == "info":
    sys.exit(0)
if args[:2] == ["image", "inspect"]:
    print(json.dumps(["docker.io/library/{runtime}-image@sha256:" + "ab" * 32]))
    sys.exit(0)
with_value = {{"--pwd", "--bind", "--user", "-w", "-v", "-e", "--entrypoint", "--gpus", "--device"}}
i, options = 1, {{}}
while args[i].startswith("-"):
    if args[i] in with_value:
        options.setdefault(args[i], []).append(args[i + 1])
        i += 2
    else:
        i += 1
image, rest = args[i], args[i + 1:]
if args[0] == "exec":  # apptainer: --cleanenv, the server's variables from APPTAINERENV_
    env = {{k[len("APPTAINERENV_"):]: v for k, v in os.environ.items() if k.startswith("APPTAINERENV_")}}
    command, cwd = rest, options["--pwd"][0]
else:
    env = dict(v.split("=", 1) for v in options.get("-e", []))
    command, cwd = [options["--entrypoint"][0], *rest], options["-w"][0]
env["PATH"] = {bin!r} + ":/usr/bin:/bin"
os.chdir(cwd)
os.execvpe(command[0], command, env)
'''


@pytest.mark.parametrize("runtime", ["apptainer", "docker"])
def test_a_study_runs_its_server_through_the_container_runtime(runtime, tmp_path, monkeypatch):
    fake_bin = tmp_path / "fake_bin"
    fake_bin.mkdir()
    log = tmp_path / f"fake_{runtime}.log"
    (fake_bin / runtime).write_text(FAKE_RUNTIME.format(python=sys.executable, runtime=runtime, log=str(log),
                                                        bin=str(Path(sys.executable).parent)))
    (fake_bin / runtime).chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "reference.sif").write_bytes(b"a built image")
    done = run_cli("run", "smoke", "--container", runtime, "--models", "resnet50", "--users", "1",
                   "--repetitions", "1", "--duration", "1", "--warmup", "0", "--out", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    (cell,) = summary["cells"]
    assert cell["status"] == "ok" and cell["correct"]["ok"] and cell["requests"] > 0
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    (served,) = [argv for argv in runs if argv[0] in ("exec", "run")]
    assert "servingbench.adapters.reference_server" in served
    environment = json.loads((out / "environment.json").read_text())["containers"]
    if runtime == "apptainer":
        sif = tmp_path / "images" / "reference.sif"
        assert served[served.index(str(sif)) + 1] == "python3"
        digest = f"sha256:{hashlib.sha256(sif.read_bytes()).hexdigest()}"
        assert environment == {"reference": {"runtime": "apptainer", "image": str(sif), "digest": digest,
                                             "gpus": False}}
    else:
        assert served[served.index("--entrypoint") + 1] == "python3"
        assert environment == {"reference": {"runtime": "docker", "image": f"servingbench-reference:{VERSION}",
                                             "digest": "docker.io/library/docker-image@sha256:" + "ab" * 32,
                                             "gpus": False}}
    assert yaml.safe_load((out / "study.yaml").read_text())["server"]["container"]["runtime"] == runtime
    assert processes_mentioning(str(out)) == []


def test_digest_is_none_where_it_cannot_be_had(tmp_path, monkeypatch):
    assert image_digest(Container("apptainer", str(tmp_path / "missing.sif"))) is None
    assert image_digest(Container("apptainer", "docker://tensorflow/serving:2.19.0")) is None  # in apptainer's cache
    fake_bin = tmp_path / "fake_bin"
    fake_bin.mkdir()
    monkeypatch.setenv("PATH", str(fake_bin))
    assert image_digest(Container("podman", "tensorflow/serving:2.19.0")) is None  # no podman at all
    for answer in ("exit 1", "echo not-json", "echo '[]'"):  # not pulled; a garbled answer; built here, never pushed
        (fake_bin / "podman").write_text(f"#!/bin/sh\n{answer}\n")
        (fake_bin / "podman").chmod(0o755)
        assert image_digest(Container("podman", "tensorflow/serving:2.19.0")) is None, answer
    (fake_bin / "podman").write_text("#!/bin/sh\necho '[\"docker.io/tensorflow/serving@sha256:12\"]'\n")
    assert image_digest(Container("podman", "tensorflow/serving:2.19.0")) == "docker.io/tensorflow/serving@sha256:12"
