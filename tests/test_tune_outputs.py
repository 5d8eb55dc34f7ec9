"""The outputs of `servingbench tune`, re-rendered from a tune.json built here: tables, the Pareto figure,
the ranking, tune-report.html, and `servingbench report` on a tune folder."""
from __future__ import annotations

import csv
import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from conftest import run_cli
from servingbench.errors import ServingbenchError
from servingbench.outputs.render import REPORT
from servingbench.outputs.tune_outputs import TUNE_REPORT, render_tune_outputs
from servingbench.outputs.tune_tables import pareto_front, ranking
from servingbench.results.schema import Estimate
from servingbench.results.store import ResultsDir
from servingbench.results.tune_schema import (
    Candidate,
    Confirmation,
    Cost,
    SweepStep,
    TunedKnob,
    TuneResult,
    TuneSummary,
    WrittenConfig,
)
from servingbench.results.tune_store import TUNE_FILE, load_tune_summary, save_tune_summary
from summaries import closed_cell, save
from test_report import CHROMIUM, HARNESS, _chromium

BOUND_MS = 200.0
MODELS = ("resnet50", "efficientnet-lite0")
TS_COMMAND = "torchserve --start --ts-config config.properties --model-store model-store --models resnet50=resnet50.mar"
TS_WARNING = "the load generator used 92% of a core at 8 users: throughput may be its limit"
NONE_HELD = "no candidate held p99 ≤ 200 ms at any level"
UNSUPPORTED = "the bundled tritonserver has no tensorflow backend"
# resnet50's candidates as (latency ms, throughput req/s); the Pareto front is triton's default, fastapi's two
# and torchserve's batch_size=4: torchserve's default and its other two are dominated.
ON_FRONT = {("triton", "default"), ("fastapi", "default"), ("fastapi", "workers=2"),
            ("torchserve", "workers=2 batch_size=4")}


def _estimate(mean: float, low: float | None, high: float | None, n: int = 3) -> Estimate:
    return Estimate(mean=mean, ci95_low=low, ci95_high=high, n=n)


def _candidate(framework: str, model: str, cid: str, settings: dict, held: tuple[float, float] | None,
               status: str = "ok", reason: str = "") -> Candidate:
    """`held`: (latency, throughput) at the best level (8 users) or None when no level held."""
    steps = [SweepStep(users=u, throughput_rps=u * 3.0, latency_ms=u * 25.0 + 10, failed=0, held=held is not None)
             for u in (1, 2, 4, 8)] if status == "ok" else []
    latency, throughput = held or (None, None)
    return Candidate(id=cid, settings=settings, results_dir=f"candidates/{framework}-{model}-{cid.replace(' ', '_')}",
                     status=status, reason=reason, correct=True if status == "ok" else None, steps=steps,
                     best_users=8 if held else None, throughput_rps=throughput, latency_ms=latency, wall_s=41.5)


def _confirmation(cid: str, rps: Estimate, latency_ms: Estimate, valid: bool | None = True, cost: Cost | None = None,
                  reason: str = "") -> Confirmation:
    return Confirmation(candidate=cid, results_dir=f"confirm/{cid}", users=8, throughput_rps=rps,
                        latency_ms=latency_ms, loadgen_target_qps=rps.mean if valid is not None else None,
                        loadgen_valid=valid, loadgen_latency_ms=170.5 if valid is not None else None, cost=cost,
                        loadgen_unmet=["the latency bound"] if valid is False else [], reason=reason)


def _ok(framework: str, model: str, candidates: list[Candidate], winner: str, default: Confirmation,
        tuned: Confirmation, **extra) -> TuneResult:
    gain = (tuned.throughput_rps.mean / default.throughput_rps.mean - 1) * 100
    return TuneResult(framework=framework, model=model, status="ok", search="grid", space_size=len(candidates) + 2,
                      knobs=[TunedKnob(name="workers", key="server.workers", values=[1, 2])], budget_s=600.0,
                      search_wall_s=312.25, candidates=candidates, winner=winner, default=default, tuned=tuned,
                      gain_pct=gain, **extra)


def tune_summary() -> TuneSummary:
    batch = "server.options.torchserve.batch_size"
    torchserve = _ok(
        "torchserve", "resnet50",
        [_candidate("torchserve", "resnet50", "default", {}, (120.0, 10.0)),
         _candidate("torchserve", "resnet50", "workers=2 batch_size=1", {"server.workers": 2, batch: 1}, (150.0, 18.0)),
         _candidate("torchserve", "resnet50", "workers=2 batch_size=4", {"server.workers": 2, batch: 4}, (180.0, 24.0)),
         _candidate("torchserve", "resnet50", "workers=1 batch_size=4", {"server.workers": 1, batch: 4}, (190.0, 12.0))],
        "workers=2 batch_size=4",
        _confirmation("default", _estimate(10.2, 9.8, 10.6), _estimate(118.0, 112.0, 124.0)),
        _confirmation("workers=2 batch_size=4", _estimate(24.5, 23.0, 26.0), _estimate(178.123456, 170.0, 186.25),
                      cost=Cost(server_cpu_s_per_request=0.0812345, requests_per_core_s=12.31003,
                                price_per_core_hour=0.05, cost_per_million=1.1282569)),
        config=WrittenConfig(folder="configs/torchserve-resnet50", files=["config.properties", "model-store"],
                             command=TS_COMMAND, study="configs/torchserve-resnet50/study.yaml"),
        warnings=[TS_WARNING])
    fastapi = _ok(  # its CI overlaps torchserve's
        "fastapi", "resnet50",
        [_candidate("fastapi", "resnet50", "default", {}, (90.0, 20.0)),
         _candidate("fastapi", "resnet50", "workers=2", {"server.workers": 2}, (140.0, 23.1))],
        "workers=2",
        _confirmation("default", _estimate(20.0, 19.0, 21.0), _estimate(92.0, 88.0, 96.0)),
        _confirmation("workers=2", _estimate(23.0, 21.5, 24.8), _estimate(141.0, 135.0, 147.0), valid=False,
                      cost=Cost(server_cpu_s_per_request=0.09, requests_per_core_s=11.1)))
    triton = _ok(  # CIs apart from fastapi's; the defaults won; LoadGen failed
        "triton", "resnet50",
        [_candidate("triton", "resnet50", "default", {}, (60.0, 15.0)),
         _candidate("triton", "resnet50", "instances=2", {"server.workers": 2}, None, status="failed",
                    reason="server exited with code 137")],
        "default",
        _confirmation("default", _estimate(15.0, 14.5, 15.5), _estimate(61.0, 60.0, 62.0)),
        _confirmation("default", _estimate(15.0, 14.5, 15.5), _estimate(61.0, 60.0, 62.0), valid=None,
                      reason="LoadGen run failed: timed out"))
    effnet_torchserve = _ok(
        "torchserve", "efficientnet-lite0",
        [_candidate("torchserve", "efficientnet-lite0", "default", {}, (80.0, 30.0)),
         _candidate("torchserve", "efficientnet-lite0", "workers=2", {"server.workers": 2}, (95.0, 41.0))],
        "workers=2",
        _confirmation("default", _estimate(30.0, 29.0, 31.0), _estimate(81.0, 80.0, 82.0)),
        _confirmation("workers=2", _estimate(40.0, 38.0, 42.0), _estimate(96.0, 94.0, 98.0)))
    effnet_fastapi = TuneResult(  # no level held the bound: nothing to confirm
        framework="fastapi", model="efficientnet-lite0", status="ok", reason=NONE_HELD, search="grid", space_size=2,
        budget_s=600.0, search_wall_s=90.0, candidates=[
            _candidate("fastapi", "efficientnet-lite0", "default", {}, None),
            _candidate("fastapi", "efficientnet-lite0", "workers=2", {"server.workers": 2}, None)])
    effnet_triton = TuneResult(framework="triton", model="efficientnet-lite0", status="unsupported",
                               reason=UNSUPPORTED, budget_s=600.0)
    return TuneSummary(servingbench_version="test", study="tune-test", started_at="2026-01-01T00:00:00+00:00",
                       updated_at="", complete=True, latency_bound_ms=BOUND_MS, percentile=99.0, host_cores=2,
                       host_gpus=0, results=[torchserve, fastapi, triton, effnet_torchserve, effnet_fastapi,
                                             effnet_triton])


def write_tune(path: Path) -> Path:
    save_tune_summary(ResultsDir.create(path), tune_summary())
    return path


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> Path:
    path = write_tune(tmp_path_factory.mktemp("tune") / "tune")
    render_tune_outputs(path)
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.read_text().splitlines()))


def test_saved_tune_json_reads_back_and_says_what_is_wrong(tmp_path):
    path = write_tune(tmp_path / "tune")
    assert load_tune_summary(path) == tune_summary().model_copy(update={"updated_at": load_tune_summary(path).updated_at})
    assert load_tune_summary(path).updated_at  # stamped on save
    with pytest.raises(ServingbenchError, match=r"^no tune\.json in .*: not a servingbench tune folder$"):
        load_tune_summary(tmp_path)
    (tmp_path / TUNE_FILE).write_text("{")
    with pytest.raises(ServingbenchError, match=r"tune\.json is not valid JSON \(.* at line 1\)$"):
        load_tune_summary(tmp_path)
    (tmp_path / TUNE_FILE).write_text(json.dumps({**json.loads((path / TUNE_FILE).read_text()), "schema_version": 7}))
    with pytest.raises(ServingbenchError, match=r"has schema_version 7; this servingbench reads 1$"):
        load_tune_summary(tmp_path)
    (tmp_path / TUNE_FILE).write_text(json.dumps({"schema_version": 1}))
    with pytest.raises(ServingbenchError, match=r"does not match the tune schema: Field required$"):
        load_tune_summary(tmp_path)


def test_default_vs_tuned_table_per_model(tuned):
    rows = {r["Framework"]: r for r in _rows(tuned / "tables" / "tune-resnet50.csv")}
    ts = rows["torchserve"]
    # full precision in CSV: the CI as three columns, the percentile unrounded
    assert (ts["Default req/s"], ts["Default req/s 95% CI low"], ts["Default req/s 95% CI high"]) == ("10.2", "9.8",
                                                                                                     "10.6")
    assert ts["Tuned p99 ms"] == "178.123456" and ts["Tuned p99 ms 95% CI high"] == "186.25"
    assert float(ts["Gain %"]) == pytest.approx((24.5 / 10.2 - 1) * 100, rel=1e-12)
    assert ts["Tuned settings"] == "workers=2 batch_size=4" and ts["Tuned users"] == "8"
    assert (ts["Requests per core-second"], ts["Server CPU-s per request"]) == ("12.31003", "0.0812345")
    assert ts["Cost per 1M requests"] == "1.1282569" and rows["fastapi"]["Cost per 1M requests"] == ""
    assert (ts["LoadGen target qps"], ts["LoadGen verdict"], ts["LoadGen p99 ms"]) == ("24.5", "VALID", "170.5")
    assert rows["fastapi"]["LoadGen verdict"] == "INVALID" and rows["fastapi"]["LoadGen unmet"] == "the latency bound"
    assert ts["LoadGen unmet"] == ""
    assert rows["triton"]["LoadGen verdict"] == "LoadGen run failed: timed out"
    assert rows["triton"]["Tuned settings"] == "defaults" and float(rows["triton"]["Gain %"]) == 0.0
    assert (ts["Search wall s"], ts["Candidates measured"], ts["Space size"], ts["Search"]) == ("312.25", "4", "6",
                                                                                              "grid")
    markdown = (tuned / "tables" / "tune-resnet50.md").read_text()
    assert ("| torchserve | ok | 8 | 10.2 [9.80, 10.6] | 8 | 24.5 [23.0, 26.0] | workers=2 batch_size=4 | +140.2% "
            "| 178.1 [170.0, 186.2] | 12.3 | 0.0812 | - | 1.13 | VALID at 24.5 qps (p99 170.5 ms) | 312.2 | 4 / 6 "
            "| grid | - |") in markdown
    assert "| missing: LoadGen run failed: timed out |" in markdown
    effnet = {r["Framework"]: r for r in _rows(tuned / "tables" / "tune-efficientnet-lite0.csv")}
    assert (effnet["triton"]["Status"], effnet["triton"]["Note"]) == ("unsupported", UNSUPPORTED)
    assert effnet["triton"]["Tuned req/s"] == "" and effnet["fastapi"]["Note"] == NONE_HELD
    assert effnet["fastapi"]["Tuned req/s"] == "" and effnet["fastapi"]["Candidates measured"] == "2"


def test_ranking_marks_not_distinguishable_exactly_where_cis_overlap(tuned):
    rows = [(r["Model"], r["Rank"], r["Framework"], r["Versus the one above"])
            for r in _rows(tuned / "tables" / "tune-ranking.csv")]
    assert rows == [
        ("resnet50", "1", "torchserve", ""),
        ("resnet50", "2", "fastapi", "not distinguishable from torchserve"),  # [21.5, 24.8] overlaps [23.0, 26.0]
        ("resnet50", "3", "triton", "below fastapi (CIs apart)"),            # [14.5, 15.5] does not
        ("efficientnet-lite0", "1", "torchserve", ""),
        ("efficientnet-lite0", "", "fastapi", f"not ranked: {NONE_HELD}"),
        ("efficientnet-lite0", "", "triton", f"not ranked: unsupported: {UNSUPPORTED}"),
    ]
    markdown = (tuned / "tables" / "tune-ranking.md").read_text()
    assert "| resnet50 | 2 | fastapi | 23.0 [21.5, 24.8] | workers=2 | not distinguishable from torchserve |" in markdown
    # one repetition: no CI, so no verdict either way
    once = tune_summary().results[:2]
    for r in once:
        assert r.tuned
        r.tuned.throughput_rps = _estimate(r.tuned.throughput_rps.mean or 0, None, None, n=1)
    assert [x.versus_above for x in ranking(once)] == ["", "no CI"]


def test_pareto_front_keeps_only_undominated_points():
    points = [(60.0, 15.0), (120.0, 10.0), (90.0, 20.0), (90.0, 20.0), (150.0, 18.0), (180.0, 24.0), (90.0, 19.0)]
    # (120, 10) is slower and has less throughput than (90, 20); (150, 18) too; (90, 19): same latency, less
    # throughput; equal points dominate neither
    assert pareto_front(points) == [0, 2, 3, 5]
    assert pareto_front([]) == []


def test_candidates_table_lists_every_candidate_and_the_front(tuned):
    rows = _rows(tuned / "tables" / "tune-candidates.csv")
    assert len(rows) == 12
    resnet = {(r["Framework"], r["Candidate"]): r for r in rows if r["Model"] == "resnet50"}
    assert {key for key, r in resnet.items() if r["Pareto front"] == "yes"} == ON_FRONT
    best = resnet[("torchserve", "workers=2 batch_size=4")]
    assert best["Settings"] == "server.workers=2 server.options.torchserve.batch_size=4" and best["Winner"] == "yes"
    assert (best["Best users"], best["Req/s at the bound"], best["p99 ms at best users"], best["Steps"]) == (
        "8", "24.0", "180.0", "4")
    failed = resnet[("triton", "instances=2")]
    assert (failed["Status"], failed["Reason"], failed["Req/s at the bound"]) == ("failed", "server exited with code "
                                                                                  "137", "")


def test_pareto_figures_are_valid_png_and_svg(tuned):
    for model in MODELS:
        png, svg = (tuned / "figures" / f"pareto-{model}.{ext}" for ext in ("png", "svg"))
        with Image.open(png) as image:
            assert image.format == "PNG"
            image.verify()
        root = ET.parse(svg).getroot()
        assert root.tag.endswith("svg")
        assert "Pareto front" in svg.read_text() and f"bound {BOUND_MS:g} ms" in svg.read_text()


def test_tune_report_is_self_contained(tuned):
    html = (tuned / TUNE_REPORT).read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "external resource"
    assert html.count('src="data:image/png;base64,') == len(MODELS)
    assert "p99 ≤ 200 ms" in html and "2 CPU cores, 0 GPUs" in html
    for title in ("Default vs tuned settings, resnet50", "Default vs tuned settings, efficientnet-lite0",
                  "Frameworks ranked by tuned throughput", "Every candidate measured"):
        assert title in html
    assert "not distinguishable from torchserve" in html and "+140.2%" in html
    assert TS_COMMAND in html and "configs/torchserve-resnet50" in html
    assert TS_WARNING in html and UNSUPPORTED in html and NONE_HELD in html
    assert "candidate instances=2 failed: server exited with code 137" in html


def test_report_command_re_renders_a_tune_folder(tuned, tmp_path):
    shutil.copytree(tuned, tmp_path / "tune")
    shutil.rmtree(tmp_path / "tune" / "tables")
    shutil.rmtree(tmp_path / "tune" / "figures")
    (tmp_path / "tune" / TUNE_REPORT).unlink()
    done = run_cli("report", "tune", cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"open {Path('tune') / TUNE_REPORT}" in done.stdout
    assert (tmp_path / "tune" / "tables" / "tune-resnet50.csv").read_text() == (
        tuned / "tables" / "tune-resnet50.csv").read_text()
    assert (tmp_path / "tune" / "figures" / "pareto-resnet50.svg").is_file()
    assert (tmp_path / "tune" / TUNE_REPORT).read_text() == (tuned / TUNE_REPORT).read_text()
    assert not (tmp_path / "tune" / REPORT).exists()  # no summary.json: no study report


def test_report_command_renders_both_when_a_folder_has_both(tmp_path):
    both = write_tune(tmp_path / "both")
    save(both, closed_cell("reference", "resnet50", 1, [(20.0, 50.0), (21.0, 48.0)]))
    done = run_cli("report", "both", cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (both / REPORT).is_file() and (both / TUNE_REPORT).is_file()
    assert (both / "tables" / "tune-ranking.md").is_file() and (both / "tables" / "resnet50-throughput.csv").is_file()
    empty = run_cli("report", "nowhere", cwd=tmp_path, timeout=60)
    assert empty.returncode == 2 and empty.stderr.count("\n") == 1 and "no summary.json" in empty.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian package `chromium`)")
def test_tune_report_renders_in_headless_chromium(tuned, tmp_path):
    page = shutil.copytree(tuned, tmp_path / "page")
    (page / "harness.html").write_text(HARNESS.replace(f'src="{REPORT}"', f'src="{TUNE_REPORT}"'))
    done = _chromium(tmp_path, "--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom",
                     (page / "harness.html").as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'data-result="([^"]*)"', done.stdout)
    assert found, done.stdout[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"'))
    assert result["images"] == result["decoded"] == len(MODELS)
    assert result["tables"] == 1 + 2 * len(MODELS) + 1  # ranking; per model default vs tuned and candidates; configs
    assert {"Ranking", *MODELS, "Tuned configurations"} <= set(result["headings"])
