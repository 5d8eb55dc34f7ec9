"""Bad input: one line on stderr, a non-zero exit, never a traceback."""
import socket

import pytest

from conftest import run_cli
from servingbench.config import load_study
from servingbench.errors import ServingbenchError


def assert_one_line_error(done, *fragments):
    assert done.returncode != 0
    err = done.stderr.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def test_unknown_preset_lists_the_presets():
    done = run_cli("run", "nosuchpreset", timeout=60)
    assert_one_line_error(done, "unknown study 'nosuchpreset'", "quick", "smoke", "study")


def test_unknown_framework_and_model_list_the_valid_ones(tmp_path):
    done = run_cli("run", "smoke", "--frameworks", "reference,tfx", "--out", str(tmp_path / "r"), timeout=60)
    assert_one_line_error(done, "unknown framework 'tfx'", "reference", "endpoint")
    done = run_cli("run", "smoke", "--models", "resnet51", "--out", str(tmp_path / "r"), timeout=60)
    assert_one_line_error(done, "resnet51", "resnet50", "bart-large-cnn")


def test_invalid_yaml_names_the_line(tmp_path):
    study = tmp_path / "bad.yaml"
    study.write_text("name: x\nload:\n  users: [1, 2\n")
    done = run_cli("run", str(study), timeout=60)
    assert_one_line_error(done, "bad.yaml", "invalid YAML", "line")


def test_invalid_field_is_named(tmp_path):
    study = tmp_path / "bad.yaml"
    study.write_text("load:\n  usres: [1]\n")
    with pytest.raises(ServingbenchError, match=r"field 'load.usres'"):
        load_study(str(study))
    study.write_text("load:\n  repetitions: 0\n")
    done = run_cli("run", str(study), timeout=60)
    assert_one_line_error(done, "field 'load.repetitions'", "greater than or equal to 1")


def test_bad_flag_values():
    done = run_cli("run", "smoke", "--users", "1,ten", timeout=60)
    assert_one_line_error(done, "--users")
    done = run_cli("load", "ftp://example/x", timeout=60)
    assert_one_line_error(done, "not an http(s) URL")
    done = run_cli("load", "http://127.0.0.1:9/x", "--payload", "/nonexistent/file", timeout=60)
    assert_one_line_error(done, "payload file not found")


def test_missing_study_file_and_results_folder(tmp_path):
    assert_one_line_error(run_cli("run", str(tmp_path / "missing.yaml"), timeout=60), "study file not found")
    assert_one_line_error(run_cli("report", str(tmp_path), timeout=60), "no summary.json")


def test_unwritable_out_is_refused_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = run_cli("run", "smoke", "--out", str(blocker / "sub"), timeout=60)
    assert_one_line_error(done, "cannot write results to")


def test_port_in_use_is_refused(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = run_cli("serve", "reference", "resnet50", "--port", str(port), "--out", str(tmp_path), timeout=60)
    assert_one_line_error(done, f"port {port}", "in use")


def test_cli_overrides_win_over_the_preset():
    study = load_study("smoke", {"load.users": [3], "frameworks": ["endpoint"], "server.threads": None})
    assert study.load.users == [3] and study.frameworks == ["endpoint"]
    assert study.server.threads == 1 and study.size == "tiny"


def test_list_shows_frameworks_with_availability_models_and_presets():
    done = run_cli("list", timeout=120)
    assert done.returncode == 0, done.stderr
    for name in ("reference", "endpoint", "torchserve", "resnet50", "wav2vec2-truncated", "bart-large-cnn",
                 "smoke", "quick", "study"):
        assert name in done.stdout, name
    # the endpoint framework needs a URL, and says how to give one
    assert "set endpoint.url" in done.stdout
    assert "runs from" in done.stdout and "main" in done.stdout  # which environment each server runs from


def test_unknown_framework_option_is_named_with_the_known_ones(tmp_path):
    study = tmp_path / "opts.yaml"
    study.write_text("frameworks: [torchserve]\nserver:\n  options:\n    torchserve: {batchsize: 4}\n")
    done = run_cli("run", str(study), "--out", str(tmp_path / "r"), timeout=60)
    assert_one_line_error(done, "server.options.torchserve: unknown batchsize", "batch_size", "job_queue_size")


def test_unknown_scenario_and_an_impossible_stability_window_are_named(tmp_path):
    done = run_cli("run", "smoke", "--scenarios", "closed,bursty", "--out", str(tmp_path / "r"), timeout=60)
    assert_one_line_error(done, "load.scenarios", "unknown scenario bursty", "single_stream", "capacity")
    done = run_cli("load", "http://127.0.0.1:9/x", "--until-stable", "--max-duration", "4", timeout=60)
    assert_one_line_error(done, "no room for 3 stability windows")
