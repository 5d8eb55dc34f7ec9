"""Distributed closed loop on Locust's master/worker protocol: local worker processes, `servingbench worker`
on another "host" (a network namespace), records merged on the master's clock."""
import json
import os
import shutil
import subprocess
import sys
import uuid

import numpy as np
import pyarrow as pa
import pytest

from conftest import processes_mentioning, run_cli, start_delay_server
from servingbench.analysis.stats import summarize_records
from servingbench.errors import ServingbenchError
from servingbench.launch.ports import free_port
from servingbench.launch.process import ManagedProcess
from servingbench.load.closed_loop import local_load_workers, run_closed_loop
from servingbench.load.contracts import ClosedLoopPlan, PreparedRequest
from servingbench.load.records import read_records

TIME_COLUMNS = ("sent_ns", "end_ns")


def worker_part_on_master_clock(path, offset_ns: int) -> pa.Table:
    """A worker's own file with its times moved onto the master's clock, by the test's own arithmetic."""
    table = read_records(path)
    for name in TIME_COLUMNS:  # never null: every request has a send and an end time
        shifted = pa.array(table.column(name).to_numpy() - offset_ns)
        table = table.set_column(table.schema.get_field_index(name), name, shifted)
    return table


def test_two_local_workers_measure_what_the_union_of_their_records_says(tmp_path):
    proc, url = start_delay_server(tmp_path, 10)
    plan = ClosedLoopPlan(trial_id="two", base_url=url, requests=[PreparedRequest(path="/p", body=b"x" * 100)],
                          users=6, warmup_s=1, duration_s=3, request_timeout_s=5, load_workers=2,
                          records_path=tmp_path / "requests" / "two.parquet")
    try:
        window = run_closed_loop(plan, tmp_path / "load")
    finally:
        proc.stop()
    assert len(window.load_workers) == 2
    merged = read_records(plan.records_path)
    parts = sorted((tmp_path / "load" / "two.workers").glob("worker-*.parquet"))
    assert len(parts) == 2
    union = pa.concat_tables([worker_part_on_master_clock(part, worker.clock_offset_ns)
                              for part, worker in zip(parts, window.load_workers)])
    assert merged.num_rows == union.num_rows == sum(w.records for w in window.load_workers)
    measured = summarize_records(merged, window.measure_start_ns, window.measure_end_ns)
    expected = summarize_records(union, window.measure_start_ns, window.measure_end_ns)
    assert measured.requests == expected.requests > 0 and measured.failed == 0
    assert measured.latency_ms == expected.latency_ms  # every percentile, exactly
    # each worker ran its share of the users, numbered apart; the loop is closed: ~6 users / 10 ms
    users = merged.column("worker_id").to_numpy()
    assert len(set(users)) == 6 and all(w.records > 0 for w in window.load_workers)
    assert measured.throughput_rps == pytest.approx(6 / 0.0105, rel=0.15)
    # only requests sent inside the master's window count: nothing in the window was sent after it closed
    in_window = merged.filter(pa.compute.equal(merged.column("phase"), "measure")).column("sent_ns").to_numpy()
    assert in_window.min() >= window.measure_start_ns and in_window.max() <= window.measure_end_ns
    # same host, same monotonic clock: the measured offset is within the round trip that bounds its error
    for worker in window.load_workers:
        assert abs(worker.clock_offset_ns) <= worker.round_trip_ns
    assert processes_mentioning(str(tmp_path / "load")) == []


def test_a_missing_remote_worker_is_a_clear_error(tmp_path):
    plan = ClosedLoopPlan(trial_id="alone", base_url="http://127.0.0.1:9", requests=[PreparedRequest(path="/p")],
                          users=2, warmup_s=0, duration_s=1, request_timeout_s=2, load_workers=0, remote_workers=1,
                          worker_wait_s=2, master_bind=f"127.0.0.1:{free_port()}", records_path=tmp_path / "r.parquet")
    with pytest.raises(ServingbenchError, match=r"only 0 of 1 load workers connected.*servingbench worker --master"):
        run_closed_loop(plan, tmp_path)


def test_auto_is_one_load_process_per_core_but_one_and_never_more_than_users():
    cores = len(os.sched_getaffinity(0))
    assert local_load_workers("auto", 100) == max(1, cores - 1)
    assert local_load_workers("auto", 1) == 1
    assert local_load_workers(3, 2) == 2


@pytest.mark.parametrize("flags, message", [
    (["--load-workers", "two"], "must be a number of processes or auto"),
    (["--load-workers", "0"], "workers: 0 needs remote_workers"),
    (["--load-workers", "2", "--until-stable"], "until_stable needs the single load process"),
    (["--remote-workers", "1", "--master-bind", "nohost"], "must be HOST:PORT"),
])
def test_bad_distributed_settings_are_refused_before_anything_runs(tmp_path, flags, message):
    done = run_cli("load", "http://127.0.0.1:9/p", *flags, "--out", str(tmp_path / "res"))
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "res").exists()


def test_load_with_load_workers_as_readme_shows(tmp_path):
    """README: `servingbench load URL --load-workers 2`, from the user's own folder, results relative to it."""
    proc, url = start_delay_server(tmp_path, 5)
    try:
        done = run_cli("load", f"{url}/predict", "--load-workers", "2", "--users", "4", "--duration", "2",
                       "--warmup", "1", cwd=tmp_path)
    finally:
        proc.stop()
    assert done.returncode == 0, done.stderr
    (summary,) = (tmp_path / "results").glob("*/summary.json")
    trial = json.loads(summary.read_text())["cells"][0]["repetitions"][0]
    assert [w["records"] > 0 for w in trial["load_workers"]] == [True, True]
    assert trial["requests"] > 0 and trial["failed"] == 0


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@pytest.fixture
def two_hosts():
    """Two network namespaces joined by a veth pair: (namespace A, its address, namespace B, its address)."""
    if not shutil.which("ip") or os.geteuid() != 0:
        pytest.skip("network namespaces need root and iproute2 (`ip`)")
    tag = uuid.uuid4().hex[:6]
    a, b = f"sb-a-{tag}", f"sb-b-{tag}"
    try:
        _ip("netns", "add", a)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a network namespace here: {exc.stderr.decode().strip()}")
    try:
        _ip("netns", "add", b)
        _ip("link", "add", f"va{tag}", "type", "veth", "peer", "name", f"vb{tag}")
        _ip("link", "set", f"va{tag}", "netns", a)
        _ip("link", "set", f"vb{tag}", "netns", b)
        for ns, dev, address in ((a, f"va{tag}", "10.231.7.1/24"), (b, f"vb{tag}", "10.231.7.2/24")):
            _ip("-n", ns, "addr", "add", address, "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield a, "10.231.7.1", b, "10.231.7.2"
    finally:
        for ns in (a, b):  # deleting a namespace deletes the veth end inside it, and with it the pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)


def test_a_worker_on_another_host_sends_the_load(two_hosts, tmp_path):
    """Server and master in namespace A, `servingbench worker --master A:PORT` in namespace B: every request
    crosses the veth pair from B, and the master's trial counts them."""
    ns_a, address_a, ns_b, address_b = two_hosts
    port, master_port = free_port(), free_port()
    in_a = ["ip", "netns", "exec", ns_a]
    server = ManagedProcess([*in_a, sys.executable, "-m", "servingbench.testing.delay_server", "--host", address_a,
                             "--port", str(port), "--delay-ms", "5"], tmp_path / "server.log", name="delay server")
    worker = ManagedProcess(["ip", "netns", "exec", ns_b, sys.executable, "-m", "servingbench.cli", "worker",
                             "--master", f"{address_a}:{master_port}", "--trials", "1"], tmp_path / "worker.log",
                            name="load worker")
    try:
        server.start()
        wait_until_ready_in(ns_a, f"http://{address_a}:{port}/ready", server)
        worker.start()
        argv = [*in_a, sys.executable, "-m", "servingbench.cli", "load", f"http://{address_a}:{port}/predict",
                "--users", "4", "--duration", "2", "--warmup", "1", "--load-workers", "0", "--remote-workers", "1",
                "--master-bind", f"{address_a}:{master_port}", "--out", str(tmp_path / "res")]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-2000:]
        trial = json.loads((tmp_path / "res" / "summary.json").read_text())["cells"][0]["repetitions"][0]
        (remote,) = trial["load_workers"]
        assert remote["records"] > 0 and trial["requests"] > 0 and trial["failed"] == 0
        assert abs(remote["clock_offset_ms"]) <= remote["round_trip_ms"]
        assert worker.popen.wait(timeout=30) == 0  # --trials 1: it served the one trial and left
        assert "requests recorded and sent to the master" in worker.log_tail()
    finally:
        worker.stop()
        server.stop()
    records = read_records(next((tmp_path / "res" / "requests").glob("*.parquet")))
    assert records.num_rows == remote["records"] and np.all(records.column("ok").to_numpy())


def wait_until_ready_in(namespace: str, url: str, server: ManagedProcess) -> None:
    """The server's readiness, checked from inside its namespace (the test runs outside it)."""
    probe = ["ip", "netns", "exec", namespace, sys.executable, "-c",
             "import sys, time, urllib.request\n"
             "for _ in range(100):\n"
             "    try:\n"
             f"        urllib.request.urlopen({url!r}, timeout=1); sys.exit(0)\n"
             "    except OSError:\n"
             "        time.sleep(0.2)\n"
             "sys.exit(1)"]
    if subprocess.run(probe, timeout=60).returncode:
        raise AssertionError(f"server in {namespace} never got ready: {server.log_tail()}")


def test_worker_refuses_a_master_without_a_port(tmp_path):
    done = run_cli("worker", "--master", "localhost", cwd=tmp_path)
    assert done.returncode == 2 and "--master must be HOST:PORT" in done.stderr


def test_the_wait_for_workers_is_part_of_a_trials_time_limit():
    plan = ClosedLoopPlan(trial_id="t", base_url="http://h:1", requests=[PreparedRequest(path="/")], users=1,
                          warmup_s=1, duration_s=2, request_timeout_s=1, load_workers=0, remote_workers=2,
                          worker_wait_s=30, records_path="r.parquet")
    assert plan.longest_s == 33
