"""`servingbench serve` keeps a server up until Ctrl-C and prints requests that really work against it."""
import json
import shlex
import signal
import socket
import subprocess
from contextlib import contextmanager

import pytest

from conftest import cli_in_background, processes_mentioning, run_cli, signal_and_wait
from servingbench.adapters.triton import TritonAdapter
from servingbench.config import load_study
from servingbench.errors import ServingbenchError
from servingbench.launch.ports import ensure_port_free


@contextmanager
def serving(framework: str, model: str, tmp_path, *options: str):
    """`serve` running; yields its printed `try:` command and `load it:` command (as argv lists)."""
    with cli_in_background("serve", framework, model, "--out", str(tmp_path / "serve"), *options) as proc:
        lines: list[str] = []
        while not any(line.startswith("load it:") for line in lines):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read()[-2000:]
            lines.append(line.strip())
        curl = next(line for line in lines if line.startswith("try: curl")).removeprefix("try: ")
        load = next(line for line in lines if line.startswith("load it:")).removeprefix("load it: ")
        yield shlex.split(curl), shlex.split(load)
        signal_and_wait(proc, signal.SIGINT)
        assert proc.returncode == 0
    assert processes_mentioning(str(tmp_path)) == []


def curl(argv: list[str]) -> bytes:
    done = subprocess.run(argv, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_serve_reference_until_ctrl_c_with_a_curl_line_that_works(tmp_path):
    with serving("reference", "efficientnet-lite0", tmp_path) as (curl_argv, _):
        answer = json.loads(curl(curl_argv))
        assert 281 <= answer["top5"][0][0] <= 285  # chelsea.jpg, the first sample: a cat


@pytest.mark.skipif(not TritonAdapter(load_study("smoke")).availability().ok, reason="no tritonserver here")
def test_serve_triton_prints_a_curl_line_and_a_load_line_that_work(tmp_path):
    with serving("triton", "resnet50", tmp_path) as (curl_argv, load_argv):
        # KServe v2 with the binary extension: a JSON header, then the tensors' bytes
        header = json.JSONDecoder().raw_decode(curl(curl_argv).decode("latin-1"))[0]
        assert header["model_name"] == "resnet50" and header["outputs"][0]["name"] == "answer"  # end to end
        # the printed load line, shortened; its binary body and Inference-Header-Content-Length are as printed
        assert load_argv[:2] == ["servingbench", "load"]
        out = tmp_path / "load"
        done = run_cli(*load_argv[1:], "--users", "1", "--duration", "2", "--warmup", "0", "--out", str(out),
                       timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        cell = json.loads((out / "summary.json").read_text())["cells"][0]
        assert cell["status"] == "ok" and cell["failed"] == 0 and cell["requests"] > 0


def test_a_port_left_in_time_wait_counts_as_free_and_a_listening_one_does_not():
    """`serve --port P` right after a server on P stopped: its connections linger in TIME_WAIT."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    with pytest.raises(ServingbenchError, match="in use"):
        ensure_port_free(port)
    accepted.close()  # the server side closes first: its end of the connection waits in TIME_WAIT
    listener.close()
    client.close()
    assert ensure_port_free(port) == port
