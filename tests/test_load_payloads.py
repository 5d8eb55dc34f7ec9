"""`servingbench load` with payload sets (a folder, a JSONL file), their order, and --metrics-url, against the
real delay server, run as README shows it from a temporary working directory."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pytest

from conftest import run_cli, start_delay_server
from servingbench.load.http_wire import encode_request
from servingbench.load.records import read_records
from servingbench.results.store import load_summary

USERS = 2
TRIAL = ("--duration", "1.5", "--warmup", "0.5")


@pytest.fixture
def delay_server(tmp_path):
    proc, url = start_delay_server(tmp_path, 5)
    yield url
    proc.stop()


def _results(cwd: Path) -> Path:
    """The one results folder a run with the default --out made under cwd."""
    (found,) = (cwd / "results").iterdir()
    return found


def _only_trial(results: Path):
    (cell,) = load_summary(results).cells
    (trial,) = cell.repetitions
    return cell, trial, read_records(results / trial.records_file)


def _sample_order(records, worker_id: int) -> list[int]:
    mine = records.filter(pc.equal(records.column("worker_id"), worker_id))
    return [s for _, s in sorted(zip(mine.column("sent_ns").to_pylist(), mine.column("sample").to_pylist()))]


def test_payload_folder_sends_every_file_in_turn_with_its_size_and_type(delay_server, tmp_path):
    folder = tmp_path / "payloads"
    folder.mkdir()
    files = {"a.json": b'{"x": 1}', "b.bin": bytes(range(256)) * 4, "c.txt": b"t" * 5000}
    for name, body in files.items():
        (folder / name).write_bytes(body)
    (folder / "nested").mkdir()  # not a regular file: not a payload

    done = run_cli("load", f"{delay_server}/infer", "--payload", "payloads", "--users", str(USERS), *TRIAL,
                   cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    results = _results(tmp_path)
    cell, trial, records = _only_trial(results)

    assert [p.payload for p in cell.payloads] == sorted(files)
    measured = records.filter(pc.equal(records.column("phase"), "measure"))
    types = {"a.json": "application/json", "b.bin": "application/octet-stream", "c.txt": "text/plain"}
    host = delay_server.removeprefix("http://")
    for index, payload in enumerate(cell.payloads):
        body = files[payload.payload]
        assert payload.body_bytes == len(body)
        # What went on the wire is this file with the content type its extension names, headers included.
        wire = encode_request("POST", host, "/infer", {"Content-Type": types[payload.payload]}, body)
        assert payload.bytes_out == len(wire)
        mine = measured.filter(pc.equal(measured.column("sample"), index))
        assert set(mine.column("bytes_out").to_pylist()) == {len(wire)}
        assert payload.requests == mine.num_rows > 10
        assert payload.failed == 0 and payload.latency_ms.p50 >= 5
    assert sum(p.requests for p in cell.payloads) == trial.requests
    # Round robin: each user sends the files in turn from its own offset, so the counts differ by at most one
    # per user.
    counts = [p.requests for p in cell.payloads]
    assert max(counts) - min(counts) <= USERS
    for worker in range(USERS):
        order = _sample_order(records, worker)
        assert order[0] == worker % len(files)
        assert all(b == (a + 1) % len(files) for a, b in zip(order, order[1:]))

    # The payload table re-renders from the saved results alone.
    table = results / "tables" / f"{cell.model}-payloads.csv"
    saved = table.read_text()
    table.unlink()
    done = run_cli("report", str(results), cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert table.read_text() == saved
    rows = saved.splitlines()[1:]
    assert [row.split(",")[1] for row in rows] == sorted(files)
    assert [int(row.split(",")[4]) for row in rows] == counts


def test_jsonl_payloads_are_json_bodies_named_by_line_and_an_unanswered_metrics_url_is_a_warning(
        delay_server, tmp_path):
    lines = ['{"inputs": [1, 2, 3]}', "", '{"inputs": "a longer text input"}', '  {"inputs": []}  ']
    (tmp_path / "requests.jsonl").write_text("\n".join(lines) + "\n")
    done = run_cli("load", f"{delay_server}/infer", "--payload", "requests.jsonl", "--users", "1", *TRIAL,
                   "--metrics-url", "http://127.0.0.1:9/metrics", cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    cell, trial, _ = _only_trial(_results(tmp_path))

    host = delay_server.removeprefix("http://")
    sent = {"line-1": lines[0], "line-3": lines[2], "line-4": lines[3].strip()}
    assert [p.payload for p in cell.payloads] == list(sent)
    for payload in cell.payloads:
        body = sent[payload.payload].encode()
        assert payload.body_bytes == len(body) and payload.requests > 10
        assert payload.bytes_out == len(encode_request("POST", host, "/infer", {"Content-Type": "application/json"},
                                                       body))
    assert trial.server_metrics == {}
    assert any("metrics URL http://127.0.0.1:9/metrics did not answer" in w for w in trial.warnings)

    (tmp_path / "bad.jsonl").write_text('{"ok": 1}\n\n{"not": json}\n')
    done = run_cli("load", f"{delay_server}/infer", "--payload", "bad.jsonl", "--out", "bad", cwd=tmp_path,
                   timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["servingbench: error: bad.jsonl: line 3 is not JSON: "
                                                "Expecting value"]
    assert not (tmp_path / "bad").exists()


def test_random_order_repeats_with_its_seed_and_changes_with_another(delay_server, tmp_path):
    (tmp_path / "p").mkdir()
    for name in ("1.bin", "2.bin", "3.bin", "4.bin"):
        (tmp_path / "p" / name).write_bytes(name.encode())

    def order(seed: int, out: str) -> list[int]:
        done = run_cli("load", f"{delay_server}/infer", "--payload", "p", "--payload-order", "random",
                       "--seed", str(seed), "--users", "1", "--duration", "1", "--warmup", "0", "--out", out,
                       cwd=tmp_path, timeout=120)
        assert done.returncode == 0, done.stderr
        return _sample_order(_only_trial(tmp_path / out)[2], 0)

    first, again, other = order(7, "a"), order(7, "b"), order(8, "c")
    n = min(len(first), len(again), len(other))
    assert n > 50
    assert first[:n] == again[:n]
    assert first[:n] != other[:n]
    assert set(first) == {0, 1, 2, 3}
    # not the round robin in disguise
    assert any(b != (a + 1) % 4 for a, b in zip(first, first[1:]))


def test_metrics_url_deltas_match_the_requests_the_trial_recorded(delay_server, tmp_path):
    body = json.dumps({"x": 1}).encode()
    (tmp_path / "body.json").write_bytes(body)
    done = run_cli("load", f"{delay_server}/infer", "--payload", "body.json", "--content-type", "application/x-test",
                   "--users", str(USERS), *TRIAL, "--metrics-url", f"{delay_server}/metrics", cwd=tmp_path,
                   timeout=120)
    assert done.returncode == 0, done.stderr
    cell, trial, records = _only_trial(_results(tmp_path))
    (payload,) = cell.payloads
    # --content-type wins over the extension's
    wire = encode_request("POST", delay_server.removeprefix("http://"), "/infer",
                          {"Content-Type": "application/x-test"}, body)
    assert payload.payload == "body.json" and payload.bytes_out == len(wire)

    metrics = trial.server_metrics
    # Every request of the trial, warm-up included, was answered between the two scrapes.
    assert metrics["delay_server_requests_total"] == records.num_rows > 50
    assert metrics["delay_server_request_seconds_count"] == records.num_rows
    assert metrics["delay_server_request_seconds_mean"] == pytest.approx(
        metrics["delay_server_request_seconds_sum"] / records.num_rows)
    # the server's 5 ms delay, as the server measured it (loose: a busy host adds wake-up lag)
    assert 0.005 <= metrics["delay_server_request_seconds_mean"] < 0.05
    assert not trial.warnings
