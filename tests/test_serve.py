"""`servingbench serve` prints requests that really work against the server it started."""
import json
import shlex
import signal
import subprocess
import sys
import time

import pytest

from conftest import processes_mentioning, run_cli
from servingbench.adapters.triton import TritonAdapter
from servingbench.config import load_study


@pytest.mark.skipif(not TritonAdapter(load_study("smoke")).availability().ok, reason="no tritonserver here")
def test_serve_triton_prints_a_curl_line_and_a_load_line_that_work(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "servingbench.cli", "serve", "triton", "resnet50",
                             "--out", str(tmp_path / "serve")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 240
        while not any(line.startswith("load it:") for line in lines) and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read()[-2000:]
            lines.append(line.strip())
        curl_line = next(line for line in lines if line.startswith("try: curl"))
        curl = subprocess.run(shlex.split(curl_line.removeprefix("try: ")), capture_output=True, timeout=60)
        assert curl.returncode == 0, curl.stderr
        header = json.JSONDecoder().raw_decode(curl.stdout.decode("latin-1"))[0]  # KServe v2: JSON, then tensors
        assert header["model_name"] == "resnet50" and header["outputs"][0]["name"] == "OUTPUT__0"
        # the printed load line, shortened; its binary body and Inference-Header-Content-Length are as printed
        load_line = shlex.split(next(line for line in lines if line.startswith("load it:")).removeprefix("load it: "))
        assert load_line[:2] == ["servingbench", "load"]
        out = tmp_path / "load"
        done = run_cli(*load_line[1:], "--users", "1", "--duration", "2", "--warmup", "0", "--out", str(out),
                       timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        cell = json.loads((out / "summary.json").read_text())["cells"][0]
        assert cell["status"] == "ok" and cell["failed"] == 0 and cell["requests"] > 0
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert processes_mentioning(str(tmp_path)) == []
