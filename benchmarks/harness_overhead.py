#!/usr/bin/env python3
"""How much does servingbench's own load engine cost? It, wrk and NVIDIA perf_analyzer hit the same endpoints.

    .venv/bin/python benchmarks/harness_overhead.py [--delay-ms 10] [--duration 10] [--users 1,10,50] [--runs 3]
                                                    [--triton-concurrency 1,4] [--no-precise] [--no-triton]

Every figure is measured over --runs runs, the tools taking turns within each run (wrk then servingbench,
perf_analyzer then servingbench), and printed as min/median/max over the runs; ratios and differences are
taken per run, then summarised the same way.

1. A fixed-delay endpoint: nginx with the echo module (`apt-get install nginx libnginx-mod-http-echo`),
   whose own overhead is tiny; without it, servingbench's Python fixed-delay server. Per user count:
   throughput, mean/p50/p99 latency of wrk (`apt-get install wrk`) and servingbench, servingbench/wrk
   throughput ratio and latency differences, servingbench's load CPU.
2. The same endpoint without delay: the most requests per second one servingbench load process records.
   Then section 1 again on `delay_endpoint.c` (compiled with gcc; --no-precise skips it), whose delay runs
   on a microsecond timer: nginx's echo_sleep runs on a millisecond clock, so its delay shifts with the
   pattern in which requests arrive, and two load generators that space requests differently see
   different servers.
3. Triton (skipped, with the reason, when something is missing): `servingbench serve triton resnet50 --size
   tiny` (python backend), loaded at each --triton-concurrency by perf_analyzer and by `servingbench load`
   with the same binary KServe v2 request that `serve` prints (same input tensor bytes, binary output).
   perf_analyzer comes from `tritonclient[all]==2.51.0`, whose pinned geventhttpclient breaks Locust, so
   it lives in its own venv (PERF_ANALYZER_VENV, made on first use with `pip install "tritonclient[all]==
   2.51.0" nvidia-cuda-runtime-cu12`, ~260 MB). It also needs `apt-get install libb64-0d`.
"""
from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from servingbench.launch.ports import free_port
from servingbench.launch.process import ManagedProcess, wait_ready

ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")
NGINX_CONF = """
load_module {module};
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 10000000;
  server {{
    listen 127.0.0.1:{port};
    location /delay {{ echo_sleep {delay_s}; echo ok; }}
    location /fast {{ return 200 "ok\\n"; }}
    location /ready {{ return 200 "ok\\n"; }}
  }}
}}
"""
PERF_ANALYZER_VENV = Path.home() / ".cache" / "servingbench" / "perf-analyzer-venv"
PERF_ANALYZER_PACKAGES = ["tritonclient[all]==2.51.0", "nvidia-cuda-runtime-cu12"]
# perf_analyzer stops once its last 3 windows agree within this many percent and reports those 3 merged.
# Its default, 10%, took 7 windows at concurrency 4 here, and running out of windows ends it with exit 2
# and no CSV; what is compared is the reported windows, not the stop rule.
PA_STABILITY_PCT = 50
TRITON_MODEL = "resnet50"


# -- summarising runs -----------------------------------------------------------------------------------------

def spread(values: list[float], fmt: str) -> str:
    """min/median/max over runs (the value itself after one run)."""
    if len(values) == 1:
        return format(values[0], fmt)
    return "/".join(format(v, fmt) for v in (min(values), statistics.median(values), max(values)))


def print_table(header: list[str], rows: list[list[str]], left: int = 2) -> None:
    """Columns as wide as their widest cell; the first `left` aligned left, the figures right."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) if i < left else cell.rjust(width)
                        for i, (cell, width) in enumerate(zip(row, widths))).rstrip())


def take_turns(runs: int, users: int, *tools: Callable[[int, int], dict]) -> list[list[dict]]:
    """Each tool's results, tool(users, run), over `runs` runs; within a run the tools go one after the
    other, so slow drift in the machine's state hits them alike."""
    results: list[list[dict]] = [[] for _ in tools]
    for run in range(runs):
        for tool, out in zip(tools, results):
            out.append(tool(users, run))
    return results


def column(results: list[dict], key: str) -> list[float]:
    return [r[key] for r in results]


def paired(a: list[dict], b: list[dict], key: str, op: Callable[[float, float], float]) -> list[float]:
    """op(b, a) per run: ratios and differences between runs made side by side."""
    return [op(y[key], x[key]) for x, y in zip(a, b)]


def ratio(y: float, x: float) -> float:
    return y / x


def diff(y: float, x: float) -> float:
    return y - x


# -- the fixed-delay endpoint and wrk ------------------------------------------------------------------------

def start_endpoint(work: Path, delay_ms: float) -> tuple[ManagedProcess, str, str]:
    """(process, delay URL, no-delay URL)"""
    port = free_port()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if Path(nginx).exists() and ECHO_MODULE.exists():
        conf = work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(module=ECHO_MODULE, dir=work, port=port, delay_s=delay_ms / 1000))
        proc = ManagedProcess([nginx, "-c", str(conf), "-p", str(work)], work / "nginx.out", name="nginx")
        kind = "nginx + echo module"
    else:
        proc = ManagedProcess([sys.executable, "-m", "servingbench.testing.delay_server", "--port", str(port),
                               "--delay-ms", str(delay_ms)], work / "delay.log", name="delay server")
        kind = "servingbench.testing.delay_server (install nginx + libnginx-mod-http-echo for a leaner one)"
    proc.start()
    base = f"http://127.0.0.1:{port}"
    wait_ready(proc, f"{base}/ready", 20)
    print(f"endpoint: {kind} at {base}, delay {delay_ms} ms")
    return proc, f"{base}/delay", f"{base}/fast"


def start_precise_endpoint(work: Path, delay_ms: float) -> tuple[ManagedProcess, str] | None:
    """delay_endpoint.c (compiled here with gcc): a delay on a microsecond clock, where nginx's echo_sleep
    moves by up to a millisecond with the pattern requests arrive in. (process, delay URL), or None
    without gcc."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if not gcc:
        print("\nprecise-timer endpoint skipped: no C compiler (apt-get install gcc)")
        return None
    binary = work / "delay_endpoint"
    subprocess.run([gcc, "-O2", "-o", str(binary), str(Path(__file__).with_name("delay_endpoint.c"))], check=True)
    port = free_port()
    proc = ManagedProcess([str(binary), str(port), str(int(delay_ms * 1000))], work / "delay_endpoint.log",
                          name="delay endpoint")
    proc.start()
    base = f"http://127.0.0.1:{port}"
    wait_ready(proc, f"{base}/ready", 20)
    print(f"\nendpoint: benchmarks/delay_endpoint.c at {base}, delay {delay_ms} ms (microsecond timer)")
    return proc, f"{base}/delay"


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def run_wrk(url: str, users: int, duration: float) -> dict:
    out = subprocess.run(["wrk", "-t1", f"-c{users}", f"-d{int(duration)}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "mean": _ms(re.search(r"Latency\s+(\S+)", out).group(1)),
        "p50": _ms(re.search(r"\s50%\s+(\S+)", out).group(1)),
        "p99": _ms(re.search(r"\s99%\s+(\S+)", out).group(1)),
    }


# -- servingbench load ----------------------------------------------------------------------------------------

def load_trial(url: str, out: Path, *flags: str) -> dict:
    """`servingbench load URL` with `flags`; the summary of its first trial."""
    done = subprocess.run([sys.executable, "-m", "servingbench.cli", "load", url, *flags, "--out", str(out)],
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"servingbench load exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return json.loads((out / "summary.json").read_text())["cells"][0]["repetitions"][0]


def run_servingbench(url: str, users: int, duration: float, out: Path, *request: str) -> dict:
    """`request`: how to send it (default a GET)."""
    trial = load_trial(url, out, *(request or ("--method", "GET")),
                       "--users", str(users), "--duration", str(duration), "--warmup", "2")
    return {"rps": trial["throughput_rps"], "mean": trial["latency_ms"]["mean"], "p50": trial["latency_ms"]["p50"],
            "p99": trial["latency_ms"]["p99"], "records_per_s": trial["requests"] / trial["duration_s"],
            "load_cpu": trial["load_cpu_percent"]}


# -- sections 1 and 2 -----------------------------------------------------------------------------------------

def delay_section(url: str, user_counts: list[int], args, work: Path, label: str) -> None:
    print(f"\nfixed-delay endpoint, {args.runs} run(s) of {args.duration:g} s, min/median/max over runs; "
          "last row per user count: servingbench/wrk throughput, servingbench−wrk latency (ms)")
    rows = []
    for users in user_counts:
        wrk, sb = take_turns(args.runs, users, lambda users, run: run_wrk(url, users, args.duration),
                             lambda users, run: run_servingbench(url, users, args.duration,
                                                                 work / f"{label}-{users}-{run}"))
        for name, results in (("wrk", wrk), ("servingbench", sb)):
            rows.append([str(users), name, spread(column(results, "rps"), ".1f"),
                         *(spread(column(results, key), ".2f") for key in ("mean", "p50", "p99")),
                         spread(column(results, "load_cpu"), ".0f") if name == "servingbench" else ""])
        rows.append([str(users), "sb/wrk, sb−wrk", spread(paired(wrk, sb, "rps", ratio), ".3f"),
                     *(spread(paired(wrk, sb, key, diff), "+.2f") for key in ("mean", "p50", "p99")), ""])
    print_table(["users", "tool", "req/s", "mean ms", "p50 ms", "p99 ms", "load CPU %"], rows)


def no_delay_section(url: str, args, work: Path) -> None:
    print("\nno-delay endpoint (capacity of one load-generating process), min/median/max over runs:")
    rows = []
    for users in (10, 50):
        wrk, sb = take_turns(args.runs, users, lambda users, run: run_wrk(url, users, args.duration),
                             lambda users, run: run_servingbench(url, users, args.duration,
                                                                 work / f"fast-{users}-{run}"))
        rows.append([str(users), spread(column(wrk, "rps"), ",.0f"), spread(column(sb, "records_per_s"), ",.0f"),
                     spread(paired(wrk, sb, "rps", ratio), ".3f"), spread(column(sb, "load_cpu"), ".0f")])
    print_table(["users", "wrk req/s", "servingbench records/s", "sb/wrk", "sb load CPU %"], rows, left=1)


# -- section 3: Triton, perf_analyzer -------------------------------------------------------------------------

def perf_analyzer_env() -> tuple[Path, dict[str, str]]:
    """perf_analyzer and the environment it runs in, making its venv on first use. Raises RuntimeError
    with the fix when something is missing."""
    venv, binary = PERF_ANALYZER_VENV, PERF_ANALYZER_VENV / "bin" / "perf_analyzer"
    if not binary.exists():
        print(f"making perf_analyzer's venv (once): {venv}")
        shutil.rmtree(venv, ignore_errors=True)
        try:
            for argv in ([sys.executable, "-m", "venv", str(venv)],
                         [str(venv / "bin" / "pip"), "install", "-q", *PERF_ANALYZER_PACKAGES]):
                subprocess.run(argv, check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(venv, ignore_errors=True)  # a half-made venv would pass the check above next time
            raise RuntimeError(f"could not make {venv}: {shlex.join(exc.cmd)} failed:\n{exc.stderr[-2000:]}") from None
    # libcudart.so.12 comes from the nvidia-cuda-runtime-cu12 wheel, not from a system CUDA.
    cudart = sorted(venv.glob("lib/python*/site-packages/nvidia/cuda_runtime/lib"))
    env = dict(os.environ, LD_LIBRARY_PATH=":".join(
        p for p in (*map(str, cudart), os.environ.get("LD_LIBRARY_PATH")) if p))
    missing = re.findall(r"^\s*(\S+) => not found", subprocess.run(
        ["ldd", str(binary)], env=env, capture_output=True, text=True).stdout, re.M)
    if any(lib.startswith("libb64") for lib in missing):
        raise RuntimeError("perf_analyzer needs libb64: sudo apt-get install libb64-0d")
    if missing:
        raise RuntimeError(f"perf_analyzer lacks {', '.join(missing)} (remove {venv} to remake it)")
    return binary, env


def perf_analyzer_input(body: bytes, header_length: int, path: Path) -> Path:
    """perf_analyzer's --input-data JSON holding the very input tensors of a binary KServe v2 request body."""
    header = json.loads(body[:header_length])
    offset, tensors = header_length, {}
    for entry in header["inputs"]:
        size = entry["parameters"]["binary_data_size"]
        tensors[entry["name"]] = {"b64": base64.b64encode(body[offset:offset + size]).decode(),
                                  "shape": entry["shape"]}
        offset += size
    path.write_text(json.dumps({"data": [tensors]}))
    return path


def perf_analyzer_argv(binary: Path, url: str, concurrency: int | str, duration: float, input_data: Path,
                       report: Path) -> list[str]:
    """Windows of duration/3 s: the 3 that perf_analyzer reports add up to `duration`, as servingbench's do."""
    model = urlparse(url).path.split("/")[3]  # /v2/models/<model>/infer
    return [str(binary), "-m", model, "-u", urlparse(url).netloc, "-i", "http",
            "--input-data", str(input_data), "--input-tensor-format", "binary", "--output-tensor-format", "binary",
            "--concurrency-range", str(concurrency), "--measurement-interval", str(int(duration * 1000 / 3)),
            "--stability-percentage", str(PA_STABILITY_PCT), "--verbose-csv", "-f", str(report)]


def run_perf_analyzer(argv: list[str], env: dict[str, str]) -> dict:
    report = Path(argv[argv.index("-f") + 1])
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"perf_analyzer exited {done.returncode}: {done.stdout.strip()[-1000:]}")
    with report.open() as f:
        row = next(csv.DictReader(f))
    return {"rps": float(row["Inferences/Second"]), "mean": float(row["Avg latency"]) / 1000}


# -- section 3: Triton, the server ----------------------------------------------------------------------------

def start_triton(work: Path) -> tuple[ManagedProcess, list[str]]:
    """`servingbench serve triton resnet50 --size tiny` and, from the `servingbench load` line it prints,
    the infer URL and how to send its request (method, payload file, content type, header)."""
    port, log = free_port(), work / "serve.log"
    proc = ManagedProcess([sys.executable, "-m", "servingbench.cli", "serve", "triton", TRITON_MODEL,
                           "--size", "tiny", "--port", str(port), "--out", str(work / "serve")], log,
                          name="servingbench serve triton")
    proc.start()
    try:
        wait_ready(proc, f"http://127.0.0.1:{port}/v2/models/{TRITON_MODEL}/ready", 300)
        deadline = time.monotonic() + 30  # serve prints its lines just after the server is ready
        while not (line := next((l for l in log.read_text().splitlines() if l.startswith("load it: ")), None)):
            if time.monotonic() > deadline or proc.exited() is not None:
                raise RuntimeError(f"serve printed no 'load it:' line; its log ends:\n{proc.log_tail()}")
            time.sleep(0.1)
    except BaseException:
        proc.stop()
        raise
    print(f"\ntriton: servingbench serve (pid {proc.pid}) on port {port}, log {log}")
    argv = shlex.split(line.removeprefix("load it: "))
    return proc, argv[2:argv.index("--users")]  # users and duration are ours


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def warm_up(url: str, body: bytes, headers: dict[str, str], requests: int = 20) -> None:
    """A few requests first: TorchScript optimises on its first calls, and the first run should not pay it."""
    for _ in range(requests):
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=60) as answer:
            answer.read()


def triton_section(args, work: Path) -> None:
    from servingbench.adapters import get_adapter
    from servingbench.config import Study

    try:
        available = get_adapter("triton", Study()).availability()
        if not available.ok:
            raise RuntimeError(f"no Triton here: {available.reason}")
        binary, env = perf_analyzer_env()
    except RuntimeError as exc:
        print(f"\nTriton section skipped: {exc}")
        return
    proc, request = start_triton(work)
    try:
        url, payload = request[0], Path(option(request, "--payload"))
        header_name, _, header_length = option(request, "--header").partition(":")
        body = payload.read_bytes()
        input_data = perf_analyzer_input(body, int(header_length), work / "perf_analyzer_input.json")
        warm_up(url, body, {"Content-Type": option(request, "--content-type"), header_name: header_length.strip()})
        print(f"\nTriton {TRITON_MODEL} (tiny, python backend), {args.runs} run(s) of {args.duration:g} s, "
              "min/median/max over runs; perf_analyzer:")
        print("  " + shlex.join(perf_analyzer_argv(binary, url, "N", args.duration, input_data, Path("REPORT.csv"))))
        print(f"  servingbench load {shlex.join(request)} --users N --duration {args.duration:g} --warmup 2")
        rows = []
        for users in [int(c) for c in args.triton_concurrency.split(",")]:
            pa, sb = take_turns(
                args.runs, users,
                lambda users, run: run_perf_analyzer(perf_analyzer_argv(binary, url, users, args.duration, input_data,
                                                                        work / f"pa-{users}-{run}.csv"), env),
                lambda users, run: run_servingbench(url, users, args.duration, work / f"triton-{users}-{run}",
                                                    *request[1:]))
            rows += [[str(users), "perf_analyzer", spread(column(pa, "rps"), ".1f"),
                      spread(column(pa, "mean"), ".2f"), ""],
                     [str(users), "servingbench", spread(column(sb, "rps"), ".1f"), spread(column(sb, "mean"), ".2f"),
                      spread(column(sb, "load_cpu"), ".0f")],
                     [str(users), "sb/pa", spread(paired(pa, sb, "rps", ratio), ".3f"),
                      spread(paired(pa, sb, "mean", ratio), ".3f"), ""]]
        print_table(["concurrency", "tool", "req/s", "mean ms", "load CPU %"], rows)
    finally:
        proc.stop()  # SIGTERM: serve stops tritonserver on its way out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per run and tool")
    parser.add_argument("--users", default="1,10,50")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure, printed as min/median/max")
    parser.add_argument("--precise", action=argparse.BooleanOptionalAction, default=True,
                        help="the fixed-delay runs again on delay_endpoint.c's microsecond timer (needs gcc)")
    parser.add_argument("--triton", action=argparse.BooleanOptionalAction, default=True,
                        help="the Triton section: perf_analyzer against servingbench load")
    parser.add_argument("--triton-concurrency", default="1,4")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="sb-harness-") as tmp:
        work = Path(tmp)
        proc, delay_url, fast_url = start_endpoint(work, args.delay_ms)
        user_counts = [int(u) for u in args.users.split(",")]
        try:
            delay_section(delay_url, user_counts, args, work, "nginx")
            no_delay_section(fast_url, args, work)
        finally:
            proc.stop()
        if args.precise and (precise := start_precise_endpoint(work, args.delay_ms)):
            try:
                delay_section(precise[1], user_counts, args, work, "precise")
            finally:
                precise[0].stop()
        if args.triton:
            (work / "triton").mkdir()
            triton_section(args, work / "triton")


if __name__ == "__main__":
    main()
