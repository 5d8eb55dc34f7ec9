"""server.device and server.dtype: resolved against this host (no GPU here), placed in every framework's generated
configuration, and the correctness check's tolerance following the dtype. A GPU can't be reached here: the
generated GPU configurations are checked against a FAKE_GPU_HOST (two GPUs NVML would list), field by field."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from conftest import run_cli, run_resnet50_and_bart_study
from servingbench import devices
from servingbench.adapters import get_adapter
from servingbench.adapters.base import Artifact
from servingbench.analysis.resources import summarize_resources
from servingbench.analysis.stats import aggregate_cell
from servingbench.config import load_study
from servingbench.errors import ServingbenchError
from servingbench.exports.precision import AtPrecision, exportable
from servingbench.launch.contracts import Ports
from servingbench.models import get_model
from servingbench.monitor.resources import COLUMNS, Gpus
from servingbench.outputs.render import REPORT, render_outputs
from servingbench.results.schema import (
    CellSummary,
    Deployment,
    LatencyMs,
    ModelInfo,
    Stat,
    Summary,
    TrialResources,
    TrialSummary,
)
from servingbench.results.store import ResultsDir

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
FAKE_GPU_HOST = devices.GpuHost(gpus=(devices.Gpu(0, "FAKE GPU A", 16384), devices.Gpu(1, "FAKE GPU B", 81920)),
                                driver="999.1", cuda_driver="13.0", torch_cuda="13.0")


@pytest.fixture
def fake_gpus(monkeypatch):
    monkeypatch.setattr(devices, "gpu_host", lambda: FAKE_GPU_HOST)


def remove_scratch(launch) -> None:
    """A launch spec that is never launched: its short scratch folders (in /tmp) are this test's to remove."""
    for folder in launch.scratch_dirs:
        shutil.rmtree(folder, ignore_errors=True)


def study_on(device: str, **overrides):
    return load_study("smoke", {"server.device": device, **overrides})


def test_device_words_and_how_they_resolve_here():
    with pytest.raises(ServingbenchError, match="server.device.*must be auto, cpu, cuda or cuda:N, got 'gpu'"):
        study_on("gpu")
    assert devices.place("auto").gpu is None and devices.place("auto").label == "cpu"  # no GPU on this host
    assert devices.place("cpu", "bfloat16").label == "cpu, bfloat16"
    assert devices.place("cpu").server_env() == {"CUDA_VISIBLE_DEVICES": ""}  # servers see no GPU on the CPU
    with pytest.raises(ServingbenchError, match=r"server.device cuda: no GPU here: .*use device cpu or auto"):
        get_adapter("reference", study_on("cuda"))


def test_cuda_without_a_gpu_is_one_line_and_exit_2_before_any_work(tmp_path):
    for args in (["run", "smoke", "--device", "cuda"], ["serve", "reference", "resnet50", "--device", "cuda:1"],
                 ["tune", "smoke", "--device", "cuda"]):
        done = run_cli(*args, cwd=tmp_path, timeout=120)
        assert done.returncode == 2, (args, done.stderr)
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith(f"servingbench: error: server.device {args[-1]}: no GPU here: ")
        assert "NVML" in line and "torch" in line  # what was looked at, and what it said
    assert list(tmp_path.iterdir()) == []  # nothing was built, packaged or written


def test_auto_takes_the_first_visible_gpu_and_cuda_n_the_nth(fake_gpus, monkeypatch):
    auto = devices.place("auto")
    assert (auto.gpu.index, auto.label, auto.torch_device) == (0, "cuda:0 (FAKE GPU A)", "cuda")
    second = devices.place("cuda:1", "float16")
    assert second.label == "cuda:1 (FAKE GPU B), float16" and second.server_env() == {"CUDA_VISIBLE_DEVICES": "1"}
    with pytest.raises(ServingbenchError, match=r"cuda:2: no such GPU; this host has cuda:0 FAKE GPU A \(16384 MiB\), "
                                                r"cuda:1 FAKE GPU B"):
        devices.place("cuda:2")
    # CUDA_VISIBLE_DEVICES, as CUDA reads it: its order, only those named
    assert devices.visible_indices([0, 1, 2], "2,0") == [2, 0]
    assert devices.visible_indices([0, 1], "") == [] and devices.visible_indices([0, 1], None) == [0, 1]


def test_torchserve_config_puts_its_workers_on_the_gpu(fake_gpus, tmp_path):
    for device, gpus in (("cuda", "1"), ("cpu", "0")):
        adapter = get_adapter("torchserve", study_on(device, **{"server.workers": 2}))
        run_dir = tmp_path / device
        run_dir.mkdir()
        artifact = Artifact("torchserve", "resnet50", tmp_path / "store" / "resnet50.mar")
        launch = adapter.launch_spec(artifact, Ports(18000, 18001, 18002, (18003, 18004)), run_dir)
        remove_scratch(launch)
        properties = dict(line.split("=", 1) for line in (run_dir / "config.properties").read_text().splitlines())
        assert properties["number_of_gpu"] == gpus  # 0: TorchServe would otherwise take every GPU it finds
        models = json.loads(properties["models"])["resnet50"]["1.0"]
        assert (models["minWorkers"], models["maxWorkers"]) == (2, 2)


def test_triton_config_pbtxt_runs_the_network_on_kind_gpu(fake_gpus, tmp_path):
    model = get_model("resnet50")
    loaded = model.load()  # on the CPU: only the configuration is about the GPU
    on_gpu = get_adapter("triton", study_on("cuda:1", **{"server.workers": 3}))
    configs = {name: text_format.Parse(text, pb.ModelConfig()) for name, text in on_gpu.model_configs(model,
                                                                                                    loaded).items()}
    network = configs["resnet50_network"]
    (group,) = network.instance_group
    assert (group.kind, list(group.gpus), group.count) == (pb.ModelInstanceGroup.KIND_GPU, [0], 3)  # the only GPU
    assert network.parameters["FORCE_CPU_ONLY_INPUT_TENSORS"].string_value == "no"  # tensors stay on the GPU
    for step in ("resnet50_preprocess", "resnet50_postprocess"):  # the processing stays on the CPU
        assert [g.kind for g in configs[step].instance_group] == [pb.ModelInstanceGroup.KIND_CPU]
    assert not configs["resnet50"].instance_group  # the ensemble has none
    for backend in ("pytorch", "onnxruntime"):  # the backends' own GPU instances; they take what Triton hands them
        options = {"server.options": {"triton": {"backend": backend}}, "server.workers": 2}
        made = get_adapter("triton", study_on("cuda", **options)).model_configs(model, loaded)["resnet50_network"]
        (group,) = text_format.Parse(made, pb.ModelConfig()).instance_group
        assert (group.kind, list(group.gpus), group.count) == (pb.ModelInstanceGroup.KIND_GPU, [0], 2)
        assert "FORCE_CPU_ONLY_INPUT_TENSORS" not in made
    on_cpu = get_adapter("triton", study_on("cpu"))
    cpu_network = text_format.Parse(on_cpu.model_configs(model, loaded)["resnet50_network"], pb.ModelConfig())
    assert [g.kind for g in cpu_network.instance_group] == [pb.ModelInstanceGroup.KIND_CPU]
    assert "FORCE_CPU_ONLY_INPUT_TENSORS" not in cpu_network.parameters
    artifact = Artifact("triton", "resnet50", tmp_path / "repository")
    for adapter, metrics in ((on_gpu, "true"), (on_cpu, "false")):
        argv = adapter.launch_spec(artifact, Ports(18000, 18001, 18002), tmp_path / metrics).argv
        assert f"--allow-gpu-metrics={metrics}" in argv


def test_tfserving_gets_a_gpu_memory_fraction_and_its_gpu_image(fake_gpus, tmp_path):
    options = {"tfserving": {"binary": "/opt/tfs/tensorflow_model_server", "gpu_memory_fraction": 0.3}}
    artifact = Artifact("tfserving", "resnet50", tmp_path / "models")
    on_gpu = get_adapter("tfserving", study_on("cuda", **{"server.options": options}))
    argv = on_gpu.launch_spec(artifact, Ports(8601, 8600, 8602), tmp_path / "gpu").argv
    assert "--per_process_gpu_memory_fraction=0.3" in argv
    on_cpu = get_adapter("tfserving", study_on("cpu", **{"server.options": options}))
    cpu_argv = on_cpu.launch_spec(artifact, Ports(8601, 8600, 8602), tmp_path / "cpu").argv
    assert not any("per_process_gpu" in arg for arg in cpu_argv)
    assert on_gpu.container_image_gpu == "tensorflow/serving:2.19.0-gpu"


def test_python_frameworks_hand_the_gpu_to_their_workers(fake_gpus, tmp_path):
    artifact = Artifact("litserve", "resnet50", tmp_path / "model")
    for device, accelerator in (("cuda", "cuda"), ("cpu", "cpu")):
        launch = get_adapter("litserve", study_on(device)).launch_spec(artifact, Ports(1, 2, 3), tmp_path)
        remove_scratch(launch)
        argv = list(launch.argv)
        assert argv[argv.index("--accelerator") + 1] == accelerator
    ray = get_adapter("rayserve", study_on("cuda", **{"server.workers": 4}))
    assert ray._gpus_per_replica() == 0.25  # four replicas share the GPU; Ray hides it from actors asking none
    assert get_adapter("rayserve", study_on("cpu"))._gpus_per_replica() == 0


def test_exports_on_the_cpu_in_float32_are_the_network_itself():
    loaded = get_model("resnet50").load()
    assert exportable(loaded) is loaded.traceable()  # device cpu: exactly what was traced before
    assert loaded.on_device("cpu", "float32") is loaded
    half = get_model("resnet50").load().on_device("cpu", "bfloat16")
    wrapped = exportable(half)
    assert isinstance(wrapped, AtPrecision)
    assert next(half.network.parameters()).dtype == torch.bfloat16
    example = half.preprocess(get_model("resnet50").samples()[0].data)
    assert example.dtype == torch.float32 and wrapped(example).dtype == torch.float32  # float32 at the boundary


def test_tolerance_follows_the_dtype():
    logits = [float(i) for i in range(10)]
    expected = {"top5": [[9, "nine", 0.5]], "logits": logits}
    nudged = {"top5": [[9, "nine", 0.5]], "logits": [x + 0.05 for x in logits]}  # 0.05 / 9: ~5e-3 relative
    assert not get_model("resnet50").compare(expected, nudged).ok
    assert get_model("resnet50", dtype="bfloat16").compare(expected, nudged).ok
    tokens = {"text": "a b c", "token_ids": list(range(20))}
    one_off = {"text": "a b d", "token_ids": [*range(19), 99]}
    assert not get_model("bart-large-cnn").compare(tokens, one_off).ok
    verdict = get_model("bart-large-cnn", dtype="float16").compare(tokens, one_off)
    assert verdict.ok and "1 of 20 token ids differ" in verdict.reason
    assert not get_model("bart-large-cnn", dtype="float16").compare(tokens, {"text": "x", "token_ids": [0] * 20}).ok


def test_gpu_telemetry_columns_are_summarised_with_power():
    assert COLUMNS[-3:] == ("gpu_util_percent", "gpu_memory_mb", "gpu_power_w")
    rows = [(t, 50.0, 100.0, 10.0, 20.0, util, 2000.0, power)
            for t, util, power in ((1, 40.0, 100.0), (2, 60.0, 300.0))]
    resources = summarize_resources(rows, 0, 10, 0.5)
    assert (resources.gpu_util_percent.mean, resources.gpu_memory_mb.max, resources.gpu_power_w.mean) == (50, 2000, 200)
    assert Gpus().sample() is None  # no NVML here: telemetry goes on without it


def test_list_shows_the_devices(tmp_path):
    done = run_cli("list", cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    table = done.stdout[done.stdout.index("devices (server.device"):]
    table = table[:table.index("\nmodels")]
    assert f"{os.cpu_count()} logical cores" in table and "no GPU:" in table and "NVML" in table


def test_bfloat16_serves_within_its_tolerance(tmp_path):
    """Reduced precision for real on the CPU: the in-process model and FastAPI's TorchScript (traced in bfloat16
    behind a float32 boundary) agree within bfloat16's tolerance, and every cell says where and how it ran."""
    cells, out = run_resnet50_and_bart_study("fastapi", tmp_path, "--dtype", "bfloat16")
    assert {c["device"] for c in cells} == {"cpu, bfloat16"}
    manifest = json.loads((out / "work" / "fastapi" / "resnet50" / "model" / "servingbench.json").read_text())
    assert (manifest["device"], manifest["dtype"], manifest["runtime"]) == ("cpu", "bfloat16", "torchscript")


def test_gpu_telemetry_and_the_device_show_in_tables_and_report(tmp_path):
    """A saved GPU study (no GPU here to run one): its GPU utilisation, memory and power get tables next to CPU, and
    the report names the device of every deployment and model."""
    device = "cuda:0 (FAKE GPU A), float16"
    gpu = {"gpu_util_percent": Stat(mean=61.0, max=90.0), "gpu_memory_mb": Stat(mean=3000.0, max=3100.0),
           "gpu_power_w": Stat(mean=212.5, max=250.0)}
    trials = [TrialSummary(requests=100, ok=100, failed=0, duration_s=10.0, throughput_rps=10.0, failures_per_s=0.0,
                           latency_ms=LatencyMs(mean=9, min=8, p50=9, p90=10, p95=11, p99=12, max=13),
                           trial_id=f"reference--resnet50--u1--r{rep}", repetition=rep,
                           records_file=f"requests/reference--resnet50--u1--r{rep}.parquet",
                           started_at="2026-12-01T00:00:00+00:00", load_cpu_percent=20.0,
                           resources=TrialResources(interval_s=0.5, samples=20,
                                                    server_cpu_percent=Stat(mean=100.0, max=110.0), **gpu))
              for rep in (1, 2)]
    cell = aggregate_cell(CellSummary(framework="reference", model="resnet50", users=1, status="ok", device=device,
                                      repetitions=trials))
    summary = Summary(servingbench_version="0.1.0", study="gpu", started_at="2026-12-01T00:00:00+00:00",
                      updated_at="2026-12-01T00:01:00+00:00", complete=True, cells=[cell],
                      models=[ModelInfo(name="resnet50", task="image-classification", size="real", weights="random",
                                        device=device)],
                      deployments=[Deployment(framework="reference", model="resnet50", status="ok", device=device,
                                              startup_s=3.0)])
    results = ResultsDir.create(tmp_path / "results")
    results.save_summary(summary)
    results.write_text("study.yaml", "name: gpu\nmodels: [resnet50]\nload: {users: [1], repetitions: 2}\n")
    results.write_json("environment.json", {"servingbench": "0.1.0", "device": device})
    render_outputs(results.path)
    tables = results.path / "tables"
    for metric, value in (("gpu_util", "61.00"), ("gpu_memory", "3100.00"), ("gpu_power", "212.50"),
                          ("server_cpu", "100.00")):
        assert (tables / f"resnet50-{metric}.csv").read_text().splitlines()[1] == f"reference,{value}", metric
    html = (results.path / REPORT).read_text()
    assert "GPU power (mean)" in html and "GPU utilisation (mean)" in html
    assert html.count(device) >= 2  # the model's line and the deployment's row
    # the device check's table (benchmarks/gpu_check.py) reads the same summary: the device, GPU figures and the
    # study's own figures for the model
    check = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_check.py"), str(results.path / "summary.json")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"on {device}" in check.stdout and "212.5" in check.stdout  # the GPU's mean power
    assert "TorchServe 11.29 ms / 104.1 rps" in check.stdout  # Table 6 / Table 7, resnet50
