"""Nobody in: servers listen on loopback only, no shell runs a string built from input, user-provided names are
text (not markup) in report.html and tables/README.md, results get the user's umask and never hold a token."""
from __future__ import annotations

import ast
import json
import re
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from conftest import launched, listening_addresses, processes_mentioning, start_delay_server
from servingbench.adapters import get_adapter
from servingbench.config import load_study
from servingbench.models import get_model
from servingbench.orchestrate.deployment import deployed
from test_report import CHROMIUM, _chromium

SRC = Path(__file__).resolve().parent.parent / "src" / "servingbench"
MARKUP_NAME = "<script>alert(1)</script>|x"
SECRET = "SECRET-7f3a9c"


def _available(framework: str) -> bool:
    return get_adapter(framework, load_study("smoke")).availability().ok


def assert_listens_on_loopback_only(framework: str, options: dict, tmp_path: Path) -> None:
    adapter = get_adapter(framework, load_study("smoke", {"server.options": {framework: options}}))
    model = get_model("resnet50")
    with deployed(adapter, model, model.load(), tmp_path, 180) as live:
        assert listening_addresses(live.server.pid) == {"127.0.0.1"}
    assert processes_mentioning(str(tmp_path)) == []


def test_the_reference_server_listens_on_loopback_only(tmp_path):
    assert_listens_on_loopback_only("reference", {}, tmp_path)


# The frameworks whose per-framework tests do not list their sockets (bentoml, fastapi, kserve, litserve, mlflow,
# mlserver and rayserve do); tens of seconds each, so in the slow run. TF Serving has no loopback flag (README).
@pytest.mark.slow
@pytest.mark.parametrize("framework, options", [("torchserve", {}), ("torchserve", {"token_auth": True}),
                                                ("triton", {})])
def test_every_server_process_listens_on_loopback_only(framework, options, tmp_path):
    if not _available(framework):
        pytest.skip(f"{framework} is not available here")
    assert_listens_on_loopback_only(framework, options, tmp_path)


@pytest.mark.skipif(not _available("torchserve"), reason="TorchServe or Java missing: ./setup.sh installs both")
def test_torchserve_api_keys_stay_out_of_the_run_folder(tmp_path):
    with launched("torchserve", "resnet50", {"token_auth": True}, tmp_path) as (adapter, model, launch):
        key_file = adapter._key_file
        keys = json.loads(key_file.read_text())
        assert not key_file.is_relative_to(tmp_path)
        request = adapter.request(model, model.samples()[0])
        assert request.headers["Authorization"] == f"Bearer {keys['inference']['key']}"
        keys = [entry["key"] for entry in keys.values()]
    assert not key_file.exists()  # removed with the scratch folder
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and any(k.encode() in p.read_bytes() for k in keys)]
    assert leaked == []


SHELL_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"), ("subprocess", "getstatusoutput"),
               ("asyncio", "create_subprocess_shell")}


def shell_uses(source: str) -> list[int]:
    """Lines that hand a shell a command string: shell=True, os.system, os.popen, ... ."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = (func.value.id, func.attr) if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
            else None
        shell = any(k.arg == "shell" and not (isinstance(k.value, ast.Constant) and not k.value.value)
                    for k in node.keywords)
        if shell or name in SHELL_CALLS:
            lines.append(node.lineno)
    return lines


def test_no_command_is_run_through_a_shell():
    found = {str(p.relative_to(SRC)): lines for p in sorted(SRC.rglob("*.py"))
             if (lines := shell_uses(p.read_text()))}
    assert found == {}, f"argv lists only, never a shell string: {found}"
    assert shell_uses("import subprocess\nsubprocess.run(cmd, shell=True)\nos.system(x)\n") == [2, 3]  # it sees them


def run_cli_with_umask(*args: str, umask: int, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "servingbench.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd, umask=umask)


def assert_modes_within_umask(folder: Path, umask: int) -> None:
    wrong = {str(p.relative_to(folder)): oct(stat.S_IMODE(p.stat().st_mode)) for p in [folder, *folder.rglob("*")]
             if stat.S_IMODE(p.stat().st_mode) & umask}
    assert wrong == {}, wrong


def test_load_results_keep_the_umask_and_never_the_auth_header(tmp_path):
    """`servingbench load URL --header 'Authorization: Bearer …'` as README shows it, from an empty folder."""
    proc, url = start_delay_server(tmp_path, 5)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    try:
        done = run_cli_with_umask("load", f"{url}/infer", "--header", f"Authorization: Bearer {SECRET}",
                                  "--users", "1", "--repetitions", "1", "--duration", "1", "--warmup", "0",
                                  "--out", "results", umask=0o027, cwd=cwd)
    finally:
        proc.stop()
    assert done.returncode == 0, done.stderr[-2000:]
    results = cwd / "results"
    assert (results / "summary.json").is_file() and (results / "report.html").is_file()
    assert_modes_within_umask(results, 0o027)
    holding = [str(p) for p in results.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert holding == []
    study = yaml.safe_load((results / "study.yaml").read_text())
    assert list(study["endpoint"]["headers"]) == ["Authorization"]  # the name kept, the value not


def test_a_password_inside_a_url_is_refused_never_echoed_nor_saved(tmp_path):
    for option in ([f"http://user:{SECRET}@127.0.0.1:9/infer"],
                   ["http://127.0.0.1:9/infer", "--metrics-url", f"http://user:{SECRET}@127.0.0.1:9/metrics"]):
        done = run_cli_with_umask("load", *option, "--out", "results", umask=0o022, cwd=tmp_path)
        assert done.returncode == 2 and "carries credentials (user:password@)" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and SECRET not in done.stderr + done.stdout
        assert not (tmp_path / "results").exists()


@pytest.fixture(scope="module")
def markup_study(tmp_path_factory) -> Path:
    """A tiny `run` whose study and endpoint header carry markup and a token: the delay server as the endpoint."""
    tmp = tmp_path_factory.mktemp("markup")
    proc, url = start_delay_server(tmp, 5)
    study = tmp / "study.yaml"
    study.write_text(yaml.safe_dump({
        "name": MARKUP_NAME, "frameworks": ["endpoint"], "models": ["resnet50"], "check_correctness": False,
        "inprocess_iterations": 1, "endpoint": {"url": f"{url}/infer", "headers": {"Authorization": f"Bearer {SECRET}"}},
        "load": {"users": [1], "repetitions": 1, "duration_s": 1, "warmup_s": 0}}))
    try:
        done = run_cli_with_umask("run", str(study), "--out", str(tmp / "results"), umask=0o022, cwd=tmp)
    finally:
        proc.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp / "results"


def test_a_study_name_with_markup_is_text_in_the_tables_readme(markup_study):
    readme = (markup_study / "tables" / "README.md").read_text()
    assert readme.startswith("# &lt;script&gt;alert(1)&lt;/script&gt;\\|x: results tables")
    assert "<script>" not in readme


def test_a_study_name_with_markup_is_text_in_report_html(markup_study, tmp_path):
    html = (markup_study / "report.html").read_text()
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;|x" in html
    if CHROMIUM is None:
        pytest.skip("headless Chromium not installed (Debian package `chromium`)")
    done = _chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", (markup_study / "report.html").as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    heading = re.search(r"<h1>(.*?)</h1>", done.stdout, re.S)
    assert heading and heading.group(1).startswith("&lt;script&gt;alert(1)&lt;/script&gt;|x"), done.stdout[:2000]
    assert "<script" not in done.stdout  # the browser made no script element of it


def test_a_run_never_writes_the_endpoint_token(markup_study):
    holding = [str(p) for p in markup_study.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert holding == []
    assert yaml.safe_load((markup_study / "study.yaml").read_text())["endpoint"]["headers"] == {
        "Authorization": "<not saved>"}


ATOMIC_WRITES = """import sys
from pathlib import Path
from servingbench.atomic import atomic_directory, write_atomically
root = Path(sys.argv[1])
write_atomically(root / "f.json", "{}")
write_atomically(root / "serve.sh", "echo", executable=True)
with atomic_directory(root / "d") as scratch:
    (scratch / "x").write_text("")
"""


def test_atomic_writes_follow_the_umask():
    """In a process of its own: the umask is per process, and this one's stays as it is."""
    for umask in (0o022, 0o077, 0o002):
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-c", ATOMIC_WRITES, tmp], check=True, umask=umask)
            assert stat.S_IMODE((Path(tmp) / "f.json").stat().st_mode) == 0o666 & ~umask
            assert stat.S_IMODE((Path(tmp) / "serve.sh").stat().st_mode) == 0o777 & ~umask  # a script like serve.sh
            assert stat.S_IMODE((Path(tmp) / "d").stat().st_mode) == 0o777 & ~umask
            assert sorted(p.name for p in Path(tmp).iterdir()) == ["d", "f.json", "serve.sh"]  # no scratch left
