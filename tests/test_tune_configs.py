"""What `servingbench tune` may change per framework (Adapter.knobs), and the tuned deployment written in the
framework's own format (Adapter.write_config), served again by the framework's own tool from where it was written."""
import json
import os
import re
import shutil
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from google.protobuf import text_format

from servingbench.adapters import adapter_class, adapter_names, get_adapter
from servingbench.adapters.base import Artifact, Host, Knob
from servingbench.adapters.written_config import LINK_ABOVE_BYTES
from servingbench.config import load_study
from servingbench.launch.contracts import Ports
from servingbench.launch.process import ManagedProcess, wait_ready
from servingbench.launch.scratch import scratch_dir
from servingbench.load.transport import send_once
from servingbench.models import get_model
from servingbench.orchestrate.deployment import deployed

README = Path(__file__).resolve().parent.parent / "README.md"
SERVER_KEYS = {"server.workers", "server.threads", "server.runtime"}


def study_with(settings: dict):
    return load_study("smoke", settings)


def available(name: str) -> bool:
    return get_adapter(name, study_with({})).availability().ok


# -- knobs ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cores", [2, 8])
@pytest.mark.parametrize("name", adapter_names())
def test_knobs_fit_the_host_and_set_settings_the_framework_accepts(name, cores):
    knobs = get_adapter(name, study_with({})).knobs(Host(cores=cores))
    if name == "endpoint":
        assert knobs == []  # someone else's server: nothing to change
        return
    names = [k.name for k in knobs]
    assert names and len(set(names)) == len(names)
    options = adapter_class(name).option_defaults
    for knob in knobs:
        assert knob.key in SERVER_KEYS or knob.key.removeprefix(f"server.options.{name}.") in options, knob
        assert len(knob.values) >= 2 and len(set(knob.values)) == len(knob.values), knob
        assert knob.needs is None or knob.needs in names, knob
        if knob.uses_cores:  # each one alone may use the whole host, never more
            assert min(knob.values) == 1 and max(knob.values) == cores, knob
        for value in knob.values:  # a study that sets it is valid, and the framework takes it
            adapter_class(name)(study_with({knob.key: value}))
    adapter_class(name)(study_with({k.key: k.values[-1] for k in knobs}))  # all changed at once, too


def launch_fingerprint(name: str, settings: dict, run_dir: Path, loaded_resnet) -> str:
    """Everything a framework's server is started with (command line, environment, the files its launch writes)
    and, for Triton, whose instance count and batching live in the repository, the model's config.pbtxt."""
    adapter = get_adapter(name, study_with(settings))
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    launch = adapter.launch_spec(Artifact(name, "resnet50", run_dir / "artifact" / "resnet50"),
                                 Ports(18001, 18002, 18003, (18004, 18005)), run_dir)
    for scratch in launch.scratch_dirs:
        shutil.rmtree(scratch, ignore_errors=True)
    files = {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}
    packaged = adapter.model_config(*loaded_resnet) if name == "triton" else ""
    return repr((launch.argv, launch.env, files, packaged))


@pytest.fixture(scope="module")
def loaded_resnet():
    model = get_model("resnet50")
    return model, model.load()


@pytest.mark.parametrize("name", [n for n in adapter_names() if n != "endpoint"])
def test_every_knob_changes_what_the_server_is_started_with(name, tmp_path, loaded_resnet):
    """No knob the framework ignores: each value other than the first changes the server's launch (a knob that
    needs another is tried with that one on). server.runtime reaches the served-model folder instead, whose
    runtimes test_served_model checks."""
    fixed = {}
    if name == "tfserving":  # not installed here: its launch only names the binary
        pytest.importorskip("tensorflow_serving")
        fixed = {"server.options.tfserving.binary": "/opt/tfserving/tensorflow_model_server"}
    knobs = {k.name: k for k in get_adapter(name, study_with({})).knobs(Host(cores=4))}
    for knob in knobs.values():
        if knob.key == "server.runtime":
            continue
        base = {**fixed, **({knobs[knob.needs].key: knobs[knob.needs].values[1]} if knob.needs else {})}
        first = launch_fingerprint(name, {**base, knob.key: knob.values[0]}, tmp_path / "run", loaded_resnet)
        for value in knob.values[1:]:
            changed = launch_fingerprint(name, {**base, knob.key: value}, tmp_path / "run", loaded_resnet)
            assert changed != first, f"{name}: {knob.key}={value} changes nothing"


def knob_summary(knobs: list[Knob]) -> str:
    """A framework's knobs as README's table shows them."""
    def word(value) -> str:
        return str(value).lower() if isinstance(value, bool) else str(value)

    return "; ".join(f"`{k.name}` {', '.join(word(v) for v in k.values)}"
                     + (f" (with `{k.needs}` on)" if k.needs else "") for k in knobs)


def test_readme_lists_every_frameworks_knobs_on_a_two_core_host():
    readme = README.read_text()
    for name in adapter_names():
        knobs = get_adapter(name, study_with({})).knobs(Host(cores=2))
        row = f"| `{name}` | {knob_summary(knobs) if knobs else 'none'} |"
        assert row in readme, row


# -- written configurations, served again ---------------------------------------------------------------------------


def processes_in(folder: Path) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        if proc.info["cwd"] and Path(proc.info["cwd"]).is_relative_to(folder):
            found.append(f"{proc.pid}: {' '.join(proc.info['cmdline'] or [])}")
    return found


def write_tuned(name: str, settings: dict, tmp_path: Path):
    """Deploy tiny resnet50 with `settings`, write its configuration while it is up, stop it; returns (adapter,
    model, loaded, deployment, written configuration, target folder)."""
    adapter = get_adapter(name, study_with(settings))
    model = get_model("resnet50")
    loaded = model.load()
    target = tmp_path / "kept"
    target.mkdir()
    with deployed(adapter, model, loaded, tmp_path / "run", 180) as live:
        written = adapter.write_config(live.artifact, live.launch, live.run_dir, target)
    assert written.files and all(p.is_file() and p.is_relative_to(target) for p in written.files)
    return adapter, model, loaded, live, written, target


@contextmanager
def served_from(target: Path, command: str, ready_url: str, ready_body: str | None, env: dict[str, str],
                runs_in: Path | None = None):
    """The written command run by a shell in `target` until ready; stopped (its process group) on the way out.
    Its server runs in `runs_in` (default `target`)."""
    runs_in = runs_in or target
    process = ManagedProcess(["sh", "-c", command], target.parent / "kept-server.log", env={**os.environ, **env},
                             cwd=target, name="written configuration")
    with process:
        wait_ready(process, ready_url, 180, expect_body=ready_body)
        assert processes_in(runs_in)  # this server answers, not the one stopped before
        yield
    deadline = time.monotonic() + 60  # Ray's actors lead process groups of their own: they follow their driver
    while processes_in(runs_in) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_in(runs_in) == []


def assert_answers_like_the_model(adapter, model, loaded, base_url: str) -> None:
    sample = model.samples()[0]
    status, body, error = send_once(base_url, adapter.request(model, sample), 60)
    assert error is None, body[:300]
    assert adapter.decode(model, status, body)["top5"][0][0] == loaded.predict(sample.data)["top5"][0][0]


def assert_big_files_linked(original: Path, written: Path) -> None:
    """Weights are hard-linked (no second copy on disk), files a person may edit are copies; the served
    server's bytecode caches are left out."""
    pairs = [(original, written)] if original.is_file() else [
        (p, written / p.relative_to(original)) for p in original.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts]
    assert not list(written.rglob("__pycache__"))
    assert any(source.stat().st_size > LINK_ABOVE_BYTES for source, _ in pairs)
    for source, copy in pairs:
        assert copy.read_bytes() == source.read_bytes()
        assert os.path.samefile(source, copy) == (source.stat().st_size > LINK_ABOVE_BYTES), copy


@pytest.mark.skipif(not available("litserve"), reason="no litserve: pip install -e '.[litserve]' (./setup.sh does)")
def test_by_default_serve_sh_starts_the_tuned_deployment_as_servingbench_launched_it(tmp_path):
    """LitServe's configuration is servingbench's generated app: serve.sh, with the scratch folder it needs."""
    tuned = {"server.options.litserve.max_batch_size": 4, "server.options.litserve.batch_timeout_s": 0.005}
    adapter, model, loaded, live, written, target = write_tuned("litserve", tuned, tmp_path)
    assert written.command == "sh serve.sh" and written.files == (target / "serve.sh",)
    script = (target / "serve.sh").read_text()
    assert "--max-batch-size 4 --batch-timeout-s 0.005" in script
    assert not any(scratch.exists() for scratch in live.launch.scratch_dirs)  # removed after the first server
    try:
        with served_from(target, written.command, live.launch.ready_url, None, {}, runs_in=live.run_dir):
            assert_answers_like_the_model(adapter, model, loaded, live.launch.base_url)
    finally:
        for scratch in live.launch.scratch_dirs:
            shutil.rmtree(scratch, ignore_errors=True)


@pytest.mark.skipif(not available("torchserve"), reason="TorchServe or Java missing: ./setup.sh installs both")
def test_torchserve_config_properties_serve_the_tuned_deployment_with_torchserve_itself(tmp_path):
    from servingbench.adapters.torchserve import read_properties

    tuned = {"server.workers": 2, "server.options.torchserve.batch_size": 4,
             "server.options.torchserve.max_batch_delay_ms": 5, "server.options.torchserve.archive_format": "default"}
    adapter, model, loaded, live, written, target = write_tuned("torchserve", tuned, tmp_path)
    properties = read_properties(target / "config.properties")
    assert properties["model_store"] == "model-store"
    entry = json.loads(properties["models"])["resnet50"]["1.0"]
    assert [entry[key] for key in ("minWorkers", "maxWorkers", "batchSize", "maxBatchDelay")] == [2, 2, 4, 5]
    assert_big_files_linked(live.artifact.path, target / "model-store" / "resnet50.mar")
    assert written.command.startswith("torchserve --start --foreground")
    # TorchServe's pid file and its workers' sockets go to a temp folder of this test's own (others run TorchServe).
    tmp = scratch_dir("tsk", target)
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "TMPDIR": str(tmp), "TEMP": str(tmp)}
    try:
        with served_from(target, written.command, live.launch.ready_url, live.launch.ready_body, env):
            with urllib.request.urlopen(live.launch.ready_url, timeout=30) as answer:  # the management API
                status = json.loads(answer.read())
            assert len(status[0]["workers"]) == status[0]["minWorkers"] == 2  # the second may still be loading
            assert status[0]["batchSize"] == 4 and status[0]["maxBatchDelay"] == 5
            assert_answers_like_the_model(adapter, model, loaded, live.launch.base_url)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.skipif(not available("triton"), reason="no tritonserver: ./setup.sh installs the bundled one")
def test_triton_repository_serves_the_tuned_deployment_with_tritonserver_itself(tmp_path):
    from tritonclient.grpc.model_config_pb2 import ModelConfig

    tuned = {"server.workers": 2, "server.options.triton.max_batch_size": 4,
             "server.options.triton.max_queue_delay_us": 5000, "pipeline": ["network_only"]}  # the network at <name>/
    adapter, model, loaded, live, written, target = write_tuned("triton", tuned, tmp_path)
    config = text_format.Parse((target / "repository" / "resnet50" / "config.pbtxt").read_text(), ModelConfig())
    assert [group.count for group in config.instance_group] == [2]
    assert config.max_batch_size == 4 and config.dynamic_batching.max_queue_delay_microseconds == 5000
    assert_big_files_linked(live.artifact.path, target / "repository")
    assert re.search(r"tritonserver --model-repository=repository ", written.command), written.command
    assert "--backend-directory=backends " in written.command and (target / "backends" / "python").is_dir()
    with served_from(target, written.command, live.launch.ready_url, None, {}):
        assert_answers_like_the_model(adapter, model, loaded, live.launch.base_url)


@pytest.mark.skipif(not available("rayserve"), reason="no ray: pip install -e '.[rayserve]' (./setup.sh does)")
def test_rayserve_config_file_serves_the_tuned_deployment_with_serve_run(tmp_path):
    import yaml
    from ray.serve.schema import ServeDeploySchema

    tuned = {"server.options.rayserve.max_batch_size": 4, "server.options.rayserve.batch_wait_timeout_s": 0.005,
             "server.options.rayserve.max_ongoing_requests": 6}
    adapter, model, loaded, live, written, target = write_tuned("rayserve", tuned, tmp_path)
    assert written.command == "serve run serve_config.yaml"
    config = ServeDeploySchema.model_validate(yaml.safe_load((target / "serve_config.yaml").read_text()))
    [application] = config.applications
    assert application.args["max_batch_size"] == 4 and application.args["batch_wait_timeout_s"] == 0.005
    assert application.deployments[0].max_ongoing_requests == 6
    assert_big_files_linked(live.artifact.path, target / "model")
    # A new Ray of its own (never one running here), its session folder in a temp folder of this test's.
    ray_tmp = scratch_dir("rayk", target)
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "RAY_ADDRESS": "local",
           "RAY_TMPDIR": str(ray_tmp)}
    try:
        with served_from(target, written.command, live.launch.ready_url, live.launch.ready_body, env):
            assert_answers_like_the_model(adapter, model, loaded, live.launch.base_url)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
