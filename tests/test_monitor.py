"""Resource telemetry sums whole process trees."""
import subprocess
import sys
import time

from servingbench.analysis.resources import summarize_resources
from servingbench.monitor.resources import ProcessTree, ResourceSampler

BUSY_CHILD = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'while True: pass'])"


def test_a_busy_grandchild_counts_for_its_tree():
    parent = subprocess.Popen([sys.executable, "-c", BUSY_CHILD], start_new_session=True)
    try:
        time.sleep(1.0)  # the grandchild starts spinning
        sampler = ResourceSampler(interval_s=0.2, server_pid=parent.pid).start()
        start = time.perf_counter_ns()
        time.sleep(1.5)
        end = time.perf_counter_ns()
        rows = sampler.stop()
        tree_rss = ProcessTree(parent.pid).rss_mb()
    finally:
        subprocess.run(["pkill", "-KILL", "-s", str(parent.pid)])
        parent.wait()
    resources = summarize_resources(rows, start, end, 0.2)
    assert resources.samples >= 4
    # the parent only waits; the busy loop is its child: nearly a whole core (loose: shared machine)
    assert resources.server_cpu_percent.mean > 40
    assert resources.load_cpu_percent is None and resources.gpu_util_percent is None
    assert tree_rss > 10
