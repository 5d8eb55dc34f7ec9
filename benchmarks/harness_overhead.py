#!/usr/bin/env python3
"""How much does servingbench's own load engine cost? It and wrk hit the same fixed-delay endpoint.

    .venv/bin/python benchmarks/harness_overhead.py [--delay-ms 10] [--duration 10] [--users 1,10,50]

The endpoint is nginx with the echo module (`apt-get install nginx libnginx-mod-http-echo`), whose
own overhead is tiny; without it, servingbench's Python fixed-delay server is used. Prints, per user
count, throughput and mean/p50/p99 latency of both tools with servingbench/wrk ratios, then the
most requests per second one servingbench load process records against a no-delay endpoint.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

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


def load_trial(url: str, out: Path, *flags: str) -> dict:
    """`servingbench load URL` (GET) with `flags`; the summary of its first trial."""
    subprocess.run([sys.executable, "-m", "servingbench.cli", "load", url, "--method", "GET", *flags, "--out", str(out)],
                   check=True, capture_output=True, text=True)
    return json.loads((out / "summary.json").read_text())["cells"][0]["repetitions"][0]


def run_servingbench(url: str, users: int, duration: float, out: Path) -> dict:
    trial = load_trial(url, out, "--users", str(users), "--duration", str(duration), "--warmup", "2")
    return {"rps": trial["throughput_rps"], "mean": trial["latency_ms"]["mean"], "p50": trial["latency_ms"]["p50"],
            "p99": trial["latency_ms"]["p99"], "records_per_s": trial["requests"] / trial["duration_s"],
            "load_cpu": trial["load_cpu_percent"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--users", default="1,10,50")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="sb-harness-") as tmp:
        work = Path(tmp)
        proc, delay_url, fast_url = start_endpoint(work, args.delay_ms)
        try:
            print(f"\n{'users':>5} | {'wrk req/s':>9} {'sb req/s':>9} {'ratio':>6} | {'wrk mean':>8} {'sb mean':>8} "
                  f"{'diff':>6} | {'wrk p50':>7} {'sb p50':>7} | {'wrk p99':>7} {'sb p99':>7} | sb CPU")
            for users in [int(u) for u in args.users.split(",")]:
                wrk = run_wrk(delay_url, users, args.duration)
                sb = run_servingbench(delay_url, users, args.duration, work / f"sb-{users}")
                print(f"{users:>5} | {wrk['rps']:>9.1f} {sb['rps']:>9.1f} {sb['rps'] / wrk['rps']:>6.3f} | "
                      f"{wrk['mean']:>8.2f} {sb['mean']:>8.2f} {sb['mean'] - wrk['mean']:>+6.2f} | "
                      f"{wrk['p50']:>7.2f} {sb['p50']:>7.2f} | {wrk['p99']:>7.2f} {sb['p99']:>7.2f} | "
                      f"{sb['load_cpu']:.0f}%")
            print("\nno-delay endpoint (capacity of one load-generating process):")
            for users in (10, 50):
                wrk = run_wrk(fast_url, users, args.duration)
                sb = run_servingbench(fast_url, users, args.duration, work / f"fast-{users}")
                print(f"{users:>5} users: servingbench records {sb['records_per_s']:,.0f} requests/s "
                      f"(CPU {sb['load_cpu']:.0f}% of a core); wrk {wrk['rps']:,.0f} requests/s")
        finally:
            proc.stop()


if __name__ == "__main__":
    main()
