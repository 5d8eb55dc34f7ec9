"""Reports from a saved study: tables, figures, report.html (also in headless Chromium) and compare."""
from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image
from pydantic import ValidationError

from conftest import run_cli
from servingbench.adapters import adapter_names
from servingbench.analysis.stats import aggregate_cell
from servingbench.outputs.breakdown import latency_breakdown
from servingbench.outputs.figures import KINDS
from servingbench.outputs.render import REPORT, render_outputs
from servingbench.results.schema import (
    CellSummary,
    Correctness,
    Deployment,
    LatencyMs,
    ModelInfo,
    Stat,
    Summary,
    TrialResources,
    TrialSummary,
)
from servingbench.results.store import ResultsDir
from servingbench.usability.scorecard import CRITERIA, Scorecard, load_scorecards

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MODELS = ("resnet50", "wav2vec2-truncated")
FRAMEWORKS = ("reference", "torchserve", "triton")
CPU_WARNING = "load generator used 95% of a core: throughput may be its limit"
TRITON_UNSUPPORTED = "the bundled tritonserver has no pytorch backend"
# (framework, users) -> per-repetition (throughput req/s, mean latency ms). At 1 user reference is
# clearly fastest (CIs apart); at 4 users torchserve and triton overlap.
RUNS = {("reference", 1): [(20.0, 50.0), (20.4, 49.0)], ("reference", 4): [(40.0, 100.0), (41.0, 98.0)],
        ("torchserve", 1): [(12.0, 83.0), (12.2, 82.0)], ("torchserve", 4): [(44.0, 90.0), (46.0, 88.0)],
        ("triton", 1): [(15.0, 68.0), (14.8, 68.4)], ("triton", 4): [(45.0, 89.0), (43.0, 92.0)]}


def _latency(mean: float) -> LatencyMs:
    return LatencyMs(mean=mean, min=0.8 * mean, p50=0.98 * mean, p90=1.1 * mean, p95=1.2 * mean, p99=1.3 * mean,
                     max=1.5 * mean)


def _cell(fw: str, model: str, users: int, scale: float = 1.0) -> CellSummary:
    if fw == "triton" and model == "wav2vec2-truncated":
        return CellSummary(framework=fw, model=model, users=users, status="unsupported", reason=TRITON_UNSUPPORTED)
    trials = []
    for rep, (rps, latency) in enumerate(RUNS[(fw, users)], start=1):
        rps *= scale
        trials.append(TrialSummary(
            requests=int(rps * 10), ok=int(rps * 10), failed=0, duration_s=10.0, throughput_rps=rps,
            failures_per_s=0.0, latency_ms=_latency(latency), trial_id=f"{fw}--{model}--u{users}--r{rep}",
            repetition=rep, records_file=f"requests/{fw}--{model}--u{users}--r{rep}.parquet",
            started_at="2026-01-01T00:00:00+00:00", load_cpu_percent=30.0,
            client_send_ms=_latency(0.05) if fw == "torchserve" else None,
            client_receive_ms=_latency(0.25) if fw == "torchserve" else None,
            server_metrics={"server_ms_mean": latency - 2, "queue_ms_mean": 0.5, "inference_ms_mean": latency - 3},
            resources=TrialResources(interval_s=0.5, samples=20, server_cpu_percent=Stat(mean=90.0 + rep, max=100.0),
                                     server_rss_mb=Stat(mean=700.0, max=750.0),
                                     load_cpu_percent=Stat(mean=20.0, max=30.0)),
            warnings=[CPU_WARNING] if (fw, users, rep) == ("triton", 4, 2) else []))
    cell = CellSummary(framework=fw, model=model, users=users, status="ok", repetitions=trials,
                       client_preprocess_ms=4.0 if fw == "triton" else 0.0,
                       correct=Correctness(ok=True, reason="all samples match the in-process reference",
                                           samples_checked=4))
    return aggregate_cell(cell)


def write_study(path: Path, scale_torchserve: float = 1.0) -> Path:
    """A complete results folder (summary.json, study.yaml, environment.json) without running servers."""
    summary = Summary(
        servingbench_version="0.1.0", study="report-test", started_at="2026-01-01T00:00:00+00:00",
        updated_at="2026-01-01T00:10:00+00:00", complete=True,
        models=[ModelInfo(name=m, task="test", size="tiny", weights="random", inprocess_latency_ms=_latency(45.0))
                for m in MODELS],
        deployments=[Deployment(framework="torchserve", model="resnet50", status="ok", package_files=3,
                                package_bytes=1000, package_text_lines=120, startup_s=12.5, idle_rss_mb=850.0),
                     Deployment(framework="triton", model="wav2vec2-truncated", status="unsupported",
                                reason=TRITON_UNSUPPORTED)],
        cells=[_cell(fw, m, u, scale_torchserve if fw == "torchserve" else 1.0)
               for m in MODELS for fw in FRAMEWORKS for u in (1, 4)])
    results = ResultsDir.create(path)
    results.save_summary(summary)
    results.write_text("study.yaml", "name: report-test\nframeworks: [reference, torchserve, triton]\n"
                                     "models: [resnet50, wav2vec2-truncated]\nload: {users: [1, 4], repetitions: 2}\n")
    results.write_json("environment.json", {"servingbench": "0.1.0", "cpu": {"model": "test CPU", "logical_cores": 2}})
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    path = write_study(tmp_path_factory.mktemp("report") / "results")
    render_outputs(path)
    return path


def _csv(path: Path) -> list[list[str]]:
    return list(csv.reader(path.read_text().splitlines()))


def test_per_model_tables_have_the_study_layout(study):
    rows = _csv(study / "tables" / "resnet50-throughput.csv")
    assert rows[0] == ["Framework \\ Users", "1", "4"]
    assert [r[0] for r in rows[1:]] == list(FRAMEWORKS)
    assert rows[1][1] == "20.20"
    ci = _csv(study / "tables" / "resnet50-throughput-ci.csv")
    assert all(re.fullmatch(r"[\d.]+ \[[\d.]+, [\d.]+\]", value) for row in ci[1:] for value in row[1:])
    for metric in ("latency", "latency_p50", "latency_p99", "failures"):
        assert (study / "tables" / f"wav2vec2-truncated-{metric}.md").is_file()
    latency = _csv(study / "tables" / "wav2vec2-truncated-latency.csv")
    assert latency[3] == ["triton", "unsupported", "unsupported"]
    # telemetry where the trials sampled it, averaged over repetitions; no GPU sampled, no GPU table
    assert _csv(study / "tables" / "resnet50-server_cpu.csv")[1] == ["reference", "91.50", "91.50"]
    assert _csv(study / "tables" / "resnet50-server_memory.csv")[2] == ["torchserve", "750.00", "750.00"]
    assert not (study / "tables" / "resnet50-gpu_util.csv").exists()


def test_summary_tables_mark_the_best_per_model(study):
    latency = _csv(study / "tables" / "summary-latency-lowest-load.csv")
    assert latency[0] == ["Model", "Users", *FRAMEWORKS, "best"]
    assert latency[1] == ["resnet50", "1", "49.50", "82.50", "68.20", "reference"]
    assert latency[2][-2:] == ["unsupported", "reference"]
    throughput = _csv(study / "tables" / "summary-throughput-highest-load.csv")
    assert throughput[1][:2] == ["resnet50", "4"] and throughput[1][-1] == "torchserve"
    markdown = (study / "tables" / "summary-latency-lowest-load.md").read_text()
    assert "| resnet50 | 1 | **49.50** | 82.50 | 68.20 | reference |" in markdown
    assert f"triton / wav2vec2-truncated: unsupported: {TRITON_UNSUPPORTED}" in markdown


def test_every_figure_is_a_valid_png_and_svg(study):
    for model in MODELS:
        for kind in KINDS:
            png, svg = (study / "figures" / f"{model}-{kind.key}.{ext}" for ext in ("png", "svg"))
            assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), png
            with Image.open(png) as image:
                image.verify()
            assert ET.parse(svg).getroot().tag.endswith("svg"), svg


def test_report_is_self_contained_and_answers_first(study):
    html = (study / REPORT).read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "external resource"
    assert html.count('src="data:image/png;base64,') == len(MODELS) * len(KINDS)
    for name in MODELS + FRAMEWORKS:
        assert name in html
    assert "The CIs do not overlap: reference is ahead." in html  # resnet50 at 1 user
    assert "torchserve and triton are not distinguishable" in html  # resnet50 at 4 users
    assert "Client-side preprocessing, done before timing, adds triton +4.00 ms (72.2 ms end to end)" in html
    # the load generator's own time, inside the latency, as its engine measured it
    assert ("torchserve at 1 user: 82.5 ms end to end = inference 79.5 ms (96%), network + framework 1.70 ms (2%), "
            "other server time 0.50 ms (1%), server queue 0.50 ms (1%), client receive 0.25 ms (0%), "
            "client send 0.05 ms (0%)") in html
    assert TRITON_UNSUPPORTED in html and CPU_WARNING in html
    assert "Limited Maintenance" in html and "TensorFlow Serving" in html  # the scorecard and its notes
    # a framework the study did not score: servingbench's own scores, with the sources they cite
    assert "Scored by servingbench." in html and "https://fastapi.tiangolo.com/deployment/server-workers/" in html
    assert "12.5" in html and "850.0" in html  # deployment evidence
    assert "all samples match the in-process reference" in html


def test_breakdown_without_server_counters_splits_off_only_the_clients_time():
    trial = TrialSummary(requests=10, ok=10, failed=0, duration_s=1.0, throughput_rps=10.0, failures_per_s=0.0,
                         latency_ms=_latency(20.0), trial_id="t", repetition=1, records_file="r", started_at="now",
                         load_cpu_percent=5.0, client_send_ms=_latency(0.5), client_receive_ms=_latency(1.5))
    cell = aggregate_cell(CellSummary(framework="endpoint", model="m", users=1, status="ok", repetitions=[trial]))
    assert latency_breakdown(cell) == {"client send": 0.5, "network + server": 18.0, "client receive": 1.5}


def test_report_command_regenerates_everything(study, tmp_path):
    copy = shutil.copytree(study, tmp_path / "copy")
    shutil.rmtree(copy / "figures")
    (copy / REPORT).unlink()
    done = run_cli("report", str(copy), timeout=120)
    assert done.returncode == 0, done.stderr
    assert (copy / REPORT).is_file() and (copy / "figures" / "resnet50-breakdown.svg").is_file()
    assert (copy / REPORT).read_text() == (study / REPORT).read_text()


def test_results_without_newer_fields_still_render(tmp_path):
    """An older or interrupted folder: no deployments, models or resources, a cell still running."""
    path = write_study(tmp_path / "old")
    summary = json.loads((path / "summary.json").read_text())
    summary.update(complete=False, deployments=[], models=[])
    for cell in summary["cells"]:
        for trial in cell["repetitions"]:
            del trial["resources"]
    summary["cells"][0]["status"] = "running"
    (path / "summary.json").write_text(json.dumps(summary))
    render_outputs(path)
    html = (path / REPORT).read_text()
    assert "This study did not finish" in html and "no deployment records" in html
    assert not (path / "tables" / "resnet50-server_cpu.csv").exists()
    assert "interrupted after 2 repetition(s)" in html


def test_compare_shows_the_change_and_flags_it(study, tmp_path):
    faster = write_study(tmp_path / "faster", scale_torchserve=1.5)
    done = run_cli("compare", str(study), str(faster), timeout=60)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if "torchserve" in line and "throughput" in line)
    assert "+50.0%" in row and "!" in row
    unchanged = next(line for line in done.stdout.splitlines() if "reference" in line and "throughput" in line)
    assert "+0.0%" in unchanged and "!" not in unchanged
    missing = run_cli("compare", str(study), str(tmp_path / "nowhere"), timeout=60)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no summary.json" in missing.stderr


HARNESS = """<!DOCTYPE html><html><body><iframe id="r" src="report.html" style="width:1200px;height:900px"></iframe>
<script>
document.getElementById("r").addEventListener("load", () => {
  const doc = document.getElementById("r").contentDocument;
  const images = [...doc.images];
  document.body.dataset.result = JSON.stringify({
    images: images.length, decoded: images.filter(i => i.complete && i.naturalWidth > 0).length,
    tables: doc.querySelectorAll("table").length, headings: [...doc.querySelectorAll("h2")].map(h => h.textContent)});
});
</script></body></html>"""


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr", "--v=0"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian package `chromium`)")
def test_report_renders_in_headless_chromium(study, tmp_path):
    """A harness page loads report.html in an iframe and records what the browser actually rendered."""
    page = shutil.copytree(study, tmp_path / "page")
    (page / "harness.html").write_text(HARNESS)
    done = _chromium(tmp_path, "--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom",
                     (page / "harness.html").as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    found = re.search(r'data-result="([^"]*)"', done.stdout)
    assert found, done.stdout[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"'))
    assert result["images"] == result["decoded"] == len(MODELS) * len(KINDS)
    assert result["tables"] >= 10
    assert {"At a glance", *MODELS, "Usability scorecard"} <= set(result["headings"])
    shot = tmp_path / "report.png"
    done = _chromium(tmp_path, "--hide-scrollbars", "--window-size=1200,2400", f"--screenshot={shot}",
                     (page / REPORT).as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    with Image.open(shot) as image:
        colors = image.convert("L").getcolors(maxcolors=1 << 16)
    assert colors is None or len(colors) > 50, "the page rendered blank"


def test_a_scorecard_the_study_did_not_score_must_cite_its_sources():
    card = {"schema_version": 1, "framework": "x", "name": "X", "criteria": {
        key: {"score": 3, "justification": "because"} for key in CRITERIA}}
    with pytest.raises(ValidationError, match="sources"):
        Scorecard.model_validate(card)
    assert Scorecard.model_validate({**card, "sources": ["https://example.org/docs"]}).scored_by == "servingbench"


def test_every_framework_servingbench_launches_has_a_scorecard():
    launched_here = set(adapter_names()) - {"reference", "endpoint"}  # baselines of the tool, not frameworks
    assert launched_here <= {card.framework for card in load_scorecards()}
