"""`servingbench tune`: the search finds a best setting known in advance, keeps to its budget, re-measures default
and winner, prices a request from the server's CPU telemetry, and runs as README shows it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import processes_mentioning, run_cli
from servingbench.adapters.base import Host, Knob
from servingbench.tune.search import GRID_LIMIT, make_search
from servingbench.tune.space import grid, normalized

INSTRUMENT = "servingbench.testing.delay_framework:DelayServerAdapter"
DELAY_MS, KNEE, BUSY_MS = 20.0, 3, 1.0


def install_delay_instrument(site: Path) -> Path:
    """A `servingbench.adapters` entry point for the delay server (a dist-info folder on PYTHONPATH)."""
    dist = site / "servingbench_delay_instrument-0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: servingbench-delay-instrument\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text(f"[servingbench.adapters]\ndelay-server = {INSTRUMENT}\n")
    return site


def delay_study(folder: Path, **tune) -> Path:
    """Its capacity under a 70 ms p99 peaks at workers = KNEE: 20 ms each up to 3 at a time (150/s), 35.6 ms
    each at 4 (112/s), 55.6 ms at 5 (90/s); fewer than 3 workers serve fewer at a time (50/s, 100/s)."""
    study = {"name": "delay-tune", "frameworks": ["delay-server"], "models": ["resnet50"], "size": "tiny",
             "server": {"options": {"delay-server": {"delay_ms": DELAY_MS, "knee": KNEE, "busy_ms": BUSY_MS}}},
             "load": {"latency_bound_ms": 70, "latency_percentile": 99, "duration_s": 1.5, "warmup_s": 0.5,
                      "repetitions": 2, "min_query_count": 150},
             "tune": {"users": [1, 2, 4, 8], **tune}}
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


@pytest.fixture
def delay_instrument(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PYTHONPATH", str(install_delay_instrument(tmp_path / "site")))
    cwd = tmp_path / "work"
    cwd.mkdir()
    return cwd


def _tune(cwd: Path, *args: str, command: str = "tune") -> dict:
    done = run_cli(command, "study.yaml", "--out", "tuned-run", *args, cwd=cwd, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert processes_mentioning(str(cwd / "tuned-run")) == []
    return json.loads((cwd / "tuned-run" / "tune.json").read_text())


def test_grid_search_finds_the_worker_count_known_to_be_best(delay_instrument):
    cwd = delay_instrument
    delay_study(cwd, search="grid", price_per_core_hour=0.05)
    [result] = _tune(cwd)["results"]
    assert result["status"] == "ok" and result["search"] == "grid"
    ids = [c["id"] for c in result["candidates"]]
    assert ids == ["default", "workers=2", "workers=3", "workers=4", "workers=5", "workers=6"]
    assert result["winner"] == "workers=3", [(c["id"], c["throughput_rps"], c["steps"]) for c in result["candidates"]]
    by_id = {c["id"]: c for c in result["candidates"]}
    # Closed loop at the best level: 3 slots of 20 ms serve 150/s; one slot 50/s (loose: a shared 2-core host).
    assert 120 <= by_id["workers=3"]["throughput_rps"] <= 155
    assert 40 <= by_id["default"]["throughput_rps"] <= 52
    for candidate in result["candidates"]:  # every candidate is an ordinary results folder
        summary = json.loads((cwd / "tuned-run" / candidate["results_dir"] / "summary.json").read_text())
        assert [c["users"] for c in summary["cells"]] == [s["users"] for s in candidate["steps"]]
    # Default and winner re-measured with repetitions (a CI) and confirmed by LoadGen at the rate reached.
    tuned, default = result["tuned"], result["default"]
    assert tuned["throughput_rps"]["n"] == 2 and tuned["throughput_rps"]["ci95_low"] is not None
    assert tuned["loadgen_target_qps"] == pytest.approx(tuned["throughput_rps"]["mean"])
    assert tuned["loadgen_valid"] is not None, tuned["reason"]
    assert result["gain_pct"] == pytest.approx((tuned["throughput_rps"]["mean"] / default["throughput_rps"]["mean"]
                                                - 1) * 100)
    # The cost is the server's CPU-seconds per answer: it spins BUSY_MS per request (plus its own overhead).
    cost = tuned["cost"]
    assert BUSY_MS / 1000 * 0.8 <= cost["server_cpu_s_per_request"] <= BUSY_MS / 1000 * 3, cost
    assert cost["requests_per_core_s"] == pytest.approx(1 / cost["server_cpu_s_per_request"])
    assert cost["cost_per_million"] == pytest.approx(cost["server_cpu_s_per_request"] * 0.05 / 3600 * 1e6)
    # The winner rerun as a study: its settings, its level.
    rerun = yaml.safe_load((cwd / "tuned-run" / result["config"]["study"]).read_text())
    assert rerun["server"]["workers"] == 3 and rerun["load"]["users"] == [tuned["users"]] and rerun["tune"] is None
    done = run_cli("run", f"tuned-run/{result['config']['study']}", "--out", "rerun", cwd=cwd, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [cell] = json.loads((cwd / "rerun" / "summary.json").read_text())["cells"]
    assert cell["users"] == tuned["users"] and 120 <= cell["throughput_rps"]["mean"] <= 155
    assert cell["cost"]["server_cpu_s_per_request"] > 0  # every cell of a run carries its cost per request


def test_the_budget_ends_an_optuna_search_early_in_a_study_that_asks_for_tuning(delay_instrument):
    cwd = delay_instrument
    delay_study(cwd, search="optuna", budget_minutes=0.25)
    [result] = _tune(cwd, "--repetitions", "1", command="run")["results"]  # `run` of a study with `tune:`
    assert result["search"] == "optuna" and result["status"] == "ok"
    measured = [c["id"] for c in result["candidates"]]
    assert len(measured) == len(set(measured)) < 6  # no repeat, and not all 6 in 15 s
    assert any("budget" in w for w in result["warnings"])
    longest = max(c["wall_s"] for c in result["candidates"])
    assert result["search_wall_s"] <= result["budget_s"] + longest, (result["search_wall_s"], longest)


def test_space_keeps_to_the_cores_and_pins_settings_that_do_not_matter():
    knobs = [Knob("workers", "server.workers", (1, 2, 4), uses_cores=True),
             Knob("threads", "server.threads", (1, 2, 4), uses_cores=True),
             Knob("batch_size", "o.batch", (1, 8)), Knob("batch_delay_ms", "o.delay", (5, 20), needs="batch_size")]
    space = grid(knobs, Host(cores=4))
    assert all(s["server.workers"] * s["server.threads"] <= 4 for s in space)
    assert {s["o.delay"] for s in space if s["o.batch"] == 1} == {5}  # no delay without batching
    assert len(space) == 6 * 3  # (w, t) with w*t <= 4: 6 pairs; batching off, or on with 2 delays
    assert len(space) > GRID_LIMIT and make_search("auto", knobs, Host(cores=4), [], 0).kind == "optuna"
    default = space[0]
    grid_order = make_search("grid", knobs, Host(cores=4), [default], seed=0)
    assert [{k: v for k, v in s.items() if default[k] != v} for s in grid_order.space[1:5]] == [
        {"server.workers": 2}, {"server.workers": 4}, {"server.threads": 2}, {"server.threads": 4}]  # one at a time
    # A default whose batch delay lies outside the values tried (batching off) is the candidate with it pinned.
    framework_default = {**default, "o.delay": 100}
    pinned = normalized(framework_default, knobs, Host(cores=4))
    assert pinned == default and make_search("grid", knobs, Host(cores=4), [pinned], 0).ask() != default
    search = make_search("optuna", knobs, Host(cores=4), [space[0]], seed=1)
    asked = []
    while (settings := search.ask()) is not None:
        asked.append(settings)
        search.tell(settings, float(len(asked)))
    assert len(asked) == len(space) - 1 and space[0] not in asked  # every other candidate once, then done


def test_tune_smoke_as_readme_shows_it(tmp_path):
    """`servingbench tune smoke --models resnet50`, from a fresh folder, with its defaults."""
    done = run_cli("tune", "smoke", "--models", "resnet50", cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [out] = list((tmp_path / "results").iterdir())
    [result] = json.loads((out / "tune.json").read_text())["results"]
    assert result["framework"] == "reference" and result["status"] == "ok", result["reason"]
    assert [k["name"] for k in result["knobs"]] == ["threads"]
    assert result["tuned"]["throughput_rps"]["mean"] > 0 and result["candidates"][0]["correct"] is True
    assert (out / result["config"]["folder"]).is_dir() and (out / result["config"]["study"]).is_file()
    assert list((out / "figures").glob("pareto-resnet50.*")) and (out / "tables" / "tune-resnet50.md").is_file()
    assert processes_mentioning(str(out)) == []


def test_bad_tune_input_is_one_line_and_leaves_no_folder(tmp_path):
    for args, says in ((["--knobs", "workerz"], "no framework chosen has a setting named workerz; theirs: threads"),
                       (["--users", "4,2"], "must be rising positive user counts")):
        done = run_cli("tune", "smoke", "--models", "resnet50", *args, cwd=tmp_path, timeout=120)
        assert done.returncode == 2 and says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "results").exists()
