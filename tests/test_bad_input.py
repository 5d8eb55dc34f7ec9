"""Bad input, fuzzed (hypothesis): study files, CLI values, payload files and results folders. Whatever the input,
the CLI either takes it or ends in one line on stderr that names the field or file, exit 2 - never a traceback or
an "internal error" - and never changes a saved result.

The CLI runs in-process (servingbench.cli.main) for speed. Where an input is taken, the command is stopped at the
point where it would start measuring (the study runner, the endpoint's first contact): the measuring itself is
tested elsewhere; here only what comes before it is."""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import click
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import run_cli, start_delay_server
from servingbench.cli import EXIT_BAD_INPUT, main
from servingbench.load.transport import Connection
from servingbench.outputs.tune_outputs import TUNE_REPORT
from test_tune_outputs import write_tune

ACCEPTED = 0  # what the stand-ins below make a command that took its input return
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
OUTPUTS = ("tables", "figures", "timeseries", "report.html", TUNE_REPORT)  # re-rendered by `report`, not saved


def _accepted(*args, **kwargs):
    raise click.exceptions.Exit(ACCEPTED)


@pytest.fixture
def stop_before_measuring(monkeypatch):
    """`run` and `tune` stop once their study is resolved, `load` where it would first contact the endpoint."""
    monkeypatch.setattr("servingbench.orchestrate.study.StudyRunner", _accepted)
    monkeypatch.setattr("servingbench.tune.runner.TuneRunner", _accepted)
    monkeypatch.setattr("servingbench.orchestrate.load_url.wait_ready", _accepted)


def cli(capsys, *argv: str) -> tuple[int, str]:
    """The exit code and stderr of `servingbench ARGV`, run in this process."""
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *names: str) -> None:
    """Exit 2 and one line on stderr naming one of `names` (the field, option or file)."""
    assert code == EXIT_BAD_INPUT, (code, err)
    assert "Traceback" not in err and "internal error" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("servingbench: error: "), err
    assert any(name in err for name in names), (names, err)


def assert_taken_or_refused(code: int, err: str, *names: str) -> bool:
    """Either the command took the input, or refused it as assert_one_line_error says; True when taken."""
    if code == ACCEPTED:
        return True
    assert_one_line_error(code, err, *names)
    return False


def saved_results(folder: Path) -> dict[str, str]:
    """A hash per saved file (everything but what `report` re-renders)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).parts[0] not in OUTPUTS}


# --- study files -------------------------------------------------------------------------------------------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10)
KNOWN = {"": ["name", "frameworks", "models", "size", "weights", "seed", "check_correctness", "accuracy",
              "inprocess_iterations", "load", "server", "endpoint", "slo", "tune"],
         "load": ["scenarios", "users", "repetitions", "duration_s", "warmup_s", "request_timeout_s", "until_stable",
                  "target_qps", "latency_bound_ms", "latency_percentile", "workers", "remote_workers", "master_bind",
                  "max_duration_s", "stability_window_s"],
         "server": ["threads", "workers", "runtime", "startup_timeout_s", "options", "container"],
         "endpoint": ["url", "method", "payload", "headers", "metrics_url", "content_type"],
         "tune": ["budget_minutes", "search", "knobs", "users", "price_per_core_hour"]}
KEYS = st.one_of(st.sampled_from(KNOWN[""]), st.text(max_size=10))


@st.composite
def studies(draw) -> dict:
    """A smoke-sized study with random values, under known and unknown keys, at the top and one level down."""
    study = {"frameworks": ["reference"], "models": ["resnet50"],
             "load": {"users": [1], "repetitions": 1, "duration_s": 1.0, "warmup_s": 0.0}}
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from(list(KNOWN)))
        key = draw(st.one_of(st.sampled_from(KNOWN[section]), st.text(max_size=10)))
        target = study if section == "" else study.setdefault(section, {})
        if isinstance(target, dict):
            target[key] = draw(VALUES)
    return study


@FUZZ
@given(study=studies())
def test_study_files_with_random_values_are_taken_or_refused_naming_the_field(study, capsys, stop_before_measuring):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "study.yaml"
        path.write_text(yaml.safe_dump(study))
        code, err = cli(capsys, "run", str(path), "--out", str(Path(tmp) / "results"))
        if not assert_taken_or_refused(code, err, "field '"):
            assert not (Path(tmp) / "results").exists()  # refused before any folder is made


@FUZZ
@given(content=st.one_of(st.text(max_size=80).map(str.encode), st.binary(max_size=80)))
def test_study_files_with_random_text_are_taken_or_refused_naming_the_file(content, capsys, stop_before_measuring):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "study.yaml"
        path.write_bytes(content)
        code, err = cli(capsys, "run", str(path), "--out", str(Path(tmp) / "results"))
        assert_taken_or_refused(code, err, str(path))


def test_an_empty_study_file_is_refused(tmp_path, capsys, stop_before_measuring):
    for text in ("", "\n", "# only a comment\n"):
        (tmp_path / "empty.yaml").write_text(text)
        assert_one_line_error(*cli(capsys, "run", str(tmp_path / "empty.yaml")), "empty.yaml", "empty study file")


def test_a_section_that_is_not_a_mapping_is_named_when_a_flag_sets_inside_it(tmp_path, capsys,
                                                                            stop_before_measuring):
    (tmp_path / "study.yaml").write_text("load: 5\n")
    assert_one_line_error(*cli(capsys, "run", str(tmp_path / "study.yaml"), "--users", "2"), "field 'load'")
    (tmp_path / "study.yaml").write_bytes(b"name: \xff\xfe\n")
    assert_one_line_error(*cli(capsys, "run", str(tmp_path / "study.yaml")), "study.yaml", "UTF-8")


# --- CLI values --------------------------------------------------------------------------------------------------

# option -> what its error may name: the option, or the study field it sets
LOAD_OPTIONS = {"--users": "users", "--repetitions": "repetitions", "--duration": "duration_s",
                "--warmup": "warmup_s", "--max-duration": "max_duration_s", "--target-qps": "target_qps",
                "--latency-bound-ms": "latency_bound_ms", "--percentile": "latency_percentile", "--slo": "SLO",
                "--load-workers": "workers", "--remote-workers": "remote_workers", "--master-bind": "master_bind",
                "--header": "--header", "--timeout": "--timeout", "--seed": "--seed", "--metrics-url": "metrics URL",
                "--content-type": "--content-type", "--method": "--method", "--scenario": "--scenario",
                "--payload-order": "--payload-order"}
TEXT = st.one_of(st.text(max_size=20), st.text(alphabet="0123456789,.:-+eE% ", max_size=12),
                 st.sampled_from(["1,,2", ",", "1,", "0", "-1", "nan", "inf", "1e400", "1:0:1", "5:40:0", "a:b",
                                  "X: a\nb", "Name value", "p99_ms<=", "loadgen=maybe", ":5557", "host:99999",
                                  "http://[::1:1/", "auto", "", " "]))


@FUZZ
@given(option=st.sampled_from(list(LOAD_OPTIONS)), value=TEXT, more=st.booleans())
def test_load_option_values_are_taken_or_refused_naming_the_option(option, value, more, capsys,
                                                                    stop_before_measuring, tmp_path):
    extra = ["--remote-workers=1"] if more else []  # workers 0 and a master bind mean something with remote workers
    code, err = cli(capsys, "load", "http://127.0.0.1:9/x", f"{option}={value}", *extra,
                    "--out", str(tmp_path / "results"))
    assert_taken_or_refused(code, err, option, LOAD_OPTIONS[option])
    assert not (tmp_path / "results").exists()


@FUZZ
@given(option=st.sampled_from(["--users", "--frameworks", "--models", "--scenarios", "--threads", "--size",
                               "--runtime", "--target-qps", "--percentile"]), value=TEXT)
def test_run_option_values_are_taken_or_refused_naming_the_option(option, value, capsys, stop_before_measuring,
                                                                   tmp_path):
    code, err = cli(capsys, "run", "smoke", f"{option}={value}", "--out", str(tmp_path / "results"))
    field = {"--scenarios": "scenarios", "--frameworks": "frameworks", "--models": "models",
             "--target-qps": "target_qps", "--percentile": "latency_percentile"}.get(option, option)
    assert_taken_or_refused(code, err, option, field)


def test_empty_items_in_a_list_of_users_or_names_are_refused(capsys, stop_before_measuring):
    for value in ("1,,2", "1,", ",1", ","):
        assert_one_line_error(*cli(capsys, "run", "smoke", "--users", value), "--users")
    for value in ("reference,,triton", "reference,", ",reference", ","):
        assert_one_line_error(*cli(capsys, "run", "smoke", "--frameworks", value), "--frameworks")
        assert_one_line_error(*cli(capsys, "run", "smoke", "--models", value.replace("reference", "resnet50")),
                              "--models")
    assert cli(capsys, "run", "smoke", "--users", " 1, 2 ")[0] == ACCEPTED
    assert cli(capsys, "run", "smoke", "--frameworks", " reference , triton ")[0] == ACCEPTED


URLS = st.one_of(
    st.text(max_size=30),
    st.builds(lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
              st.sampled_from(["http", "https", "ftp", "HTTP", ""]),
              st.one_of(st.sampled_from(["127.0.0.1", "[::1]", "[::1:1", "localhost", "", "a..b", "é.example"]),
                        st.text(max_size=8)),
              st.one_of(st.just(""), st.integers(-5, 99999).map(lambda p: f":{p}"), st.text(max_size=4)),
              st.one_of(st.just("/"), st.text(max_size=10).map(lambda t: "/" + t))))


@FUZZ
@given(url=URLS)
def test_urls_for_load_are_taken_only_when_a_request_can_be_sent_to_them(url, capsys, stop_before_measuring,
                                                                          tmp_path):
    assume(not url.startswith("-"))  # an option, not a URL
    code, err = cli(capsys, "load", url, "--out", str(tmp_path / "results"))
    if assert_taken_or_refused(code, err, "URL"):
        base, _, path = url.partition("://")[2].partition("/")
        Connection(url[:url.index("://") + 3] + base, 1.0)  # the transport takes its host and port
        assert path.isascii() and not any(c <= " " or c == "\x7f" for c in path)  # http.client's request line


def test_a_malformed_ipv6_url_is_bad_input_not_an_internal_error(tmp_path):
    """As README shows `load`, from an empty working folder."""
    done = run_cli("load", "http://[::1:1/", timeout=60, cwd=tmp_path)
    assert done.returncode == EXIT_BAD_INPUT and "internal error" not in done.stderr
    assert done.stderr.strip() == "servingbench: error: not an http(s) URL: 'http://[::1:1/'"
    assert list(tmp_path.iterdir()) == []


# --- payload files -----------------------------------------------------------------------------------------------

JSON_LINES = st.lists(st.one_of(st.text(max_size=20), st.builds(json.dumps, VALUES), st.just(""), st.just("   ")),
                      max_size=5).map("\n".join)


@FUZZ
@given(name=st.sampled_from(["body.jsonl", "body.json", "body.bin", "body", "image.jpg"]),
       content=st.one_of(st.binary(max_size=200), JSON_LINES.map(str.encode), st.just(b"")),
       folder=st.booleans())
def test_payload_files_are_taken_or_refused_naming_the_file(name, content, folder, capsys, stop_before_measuring):
    with tempfile.TemporaryDirectory() as tmp:
        payload = Path(tmp) / "payloads"
        file = payload / name if folder else payload.with_suffix(Path(name).suffix)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(content)
        target = payload if folder else file
        code, err = cli(capsys, "load", "http://127.0.0.1:9/x", "--payload", str(target),
                        "--out", str(Path(tmp) / "results"))
        if assert_taken_or_refused(code, err, str(target), str(file)) and file.suffix == ".jsonl" and not folder:
            lines = [line for line in content.decode().splitlines() if line.strip()]
            assert lines
            for line in lines:
                json.loads(line)  # taken: every line is JSON
        assert not (Path(tmp) / "results").exists()


def test_empty_payload_folder_and_jsonl_are_refused(tmp_path, capsys, stop_before_measuring):
    (tmp_path / "none").mkdir()
    assert_one_line_error(*cli(capsys, "load", "http://127.0.0.1:9/x", "--payload", str(tmp_path / "none")),
                          "has no files")
    (tmp_path / "empty.jsonl").write_text("\n  \n")
    assert_one_line_error(*cli(capsys, "load", "http://127.0.0.1:9/x", "--payload", str(tmp_path / "empty.jsonl")),
                          "has no JSON lines")


# --- results folders ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> Path:
    """A real results folder: `servingbench load` on the delay server, one short trial."""
    tmp = tmp_path_factory.mktemp("measured")
    proc, url = start_delay_server(tmp, 5)
    try:
        done = run_cli("load", f"{url}/infer", "--users", "2", "--repetitions", "1", "--duration", "1",
                       "--warmup", "0", "--out", str(tmp / "results"), timeout=120)
    finally:
        proc.stop()
    assert done.returncode == 0, done.stderr[-2000:]
    assert list((tmp / "results" / "requests").glob("*.parquet"))
    return tmp / "results"


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> Path:
    return write_tune(tmp_path_factory.mktemp("tuned") / "tune")


def _corrupt(data: bytes, how: str, at: float, junk: bytes) -> bytes:
    cut = int(len(data) * at)
    return data[:cut] if how == "truncate" else data[:cut] + junk + data[cut + len(junk):]


def _mutated_json(data: bytes, path_choice: list[int], value) -> bytes:
    """The document with one value, found by following `path_choice` down its containers, replaced."""
    document = json.loads(data)
    parent, key = None, None
    node = document
    for choice in path_choice:
        keys = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
        if not keys:
            break
        parent, key = node, keys[choice % len(keys)]
        node = node[key]
    if parent is None:
        return json.dumps(value).encode()
    parent[key] = value
    return json.dumps(document).encode()


CORRUPTION = st.tuples(st.sampled_from(["truncate", "overwrite"]), st.floats(0, 1), st.binary(min_size=1, max_size=8))


def _report_and_compare(capsys, folder: Path, other: Path, file: Path) -> None:
    before = saved_results(folder)
    code, err = cli(capsys, "report", str(folder))
    assert_taken_or_refused(code, err, str(file))
    if (folder / "summary.json").is_file():
        code, err = cli(capsys, "compare", str(other), str(folder))
        assert_taken_or_refused(code, err, str(file))
    assert saved_results(folder) == before


@settings(FUZZ, max_examples=30)
@given(corruption=CORRUPTION, name=st.sampled_from(["summary.json", "study.yaml", "environment.json"]))
def test_corrupted_result_files_are_refused_by_report_and_compare(corruption, name, measured, capsys, tmp_path):
    with tempfile.TemporaryDirectory() as tmp:
        folder = shutil.copytree(measured, Path(tmp) / "results")
        file = folder / name
        file.write_bytes(_corrupt(file.read_bytes(), *corruption))
        _report_and_compare(capsys, folder, measured, file)


@settings(FUZZ, max_examples=30)
@given(path_choice=st.lists(st.integers(0, 50), max_size=6), value=VALUES)
def test_summary_json_with_a_random_value_anywhere_is_refused_or_reported(path_choice, value, measured, capsys):
    with tempfile.TemporaryDirectory() as tmp:
        folder = shutil.copytree(measured, Path(tmp) / "results")
        file = folder / "summary.json"
        file.write_bytes(_mutated_json(file.read_bytes(), path_choice, value))
        _report_and_compare(capsys, folder, measured, file)


@settings(FUZZ, max_examples=20)
@given(corruption=CORRUPTION)
def test_corrupted_parquet_records_are_skipped_or_refused_and_kept(corruption, measured, capsys):
    with tempfile.TemporaryDirectory() as tmp:
        folder = shutil.copytree(measured, Path(tmp) / "results")
        for records in (folder / "requests").glob("*.parquet"):
            records.write_bytes(_corrupt(records.read_bytes(), *corruption))
        _report_and_compare(capsys, folder, measured, folder / "requests")


@settings(FUZZ, max_examples=30)
@given(corruption=st.one_of(CORRUPTION.map(lambda c: ("bytes", c)),
                            st.tuples(st.lists(st.integers(0, 50), max_size=6), VALUES).map(lambda m: ("value", m))))
def test_corrupted_tune_json_is_refused_or_reported(corruption, tuned, capsys):
    with tempfile.TemporaryDirectory() as tmp:
        folder = shutil.copytree(tuned, Path(tmp) / "tune")
        file = folder / "tune.json"
        kind, how = corruption
        file.write_bytes(_corrupt(file.read_bytes(), *how) if kind == "bytes" else _mutated_json(file.read_bytes(), *how))
        before = saved_results(folder)
        assert_taken_or_refused(*cli(capsys, "report", str(folder)), str(file))
        assert saved_results(folder) == before


def test_report_of_what_is_not_a_results_folder(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert_one_line_error(*cli(capsys, "report", str(tmp_path / "missing")), "missing")
    assert_one_line_error(*cli(capsys, "report", str(tmp_path / "file")), "file")
    assert_one_line_error(*cli(capsys, "compare", str(tmp_path), str(tmp_path / "missing")), str(tmp_path))
