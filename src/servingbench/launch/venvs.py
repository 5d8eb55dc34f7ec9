"""Framework environments layered over servingbench's own.

A framework whose pins conflict with the rest (an older fastapi, pydantic, protobuf, ...) gets its own
virtual environment, as the study gave each framework its own container, instead of a downgrade of
shared packages. The environment is *layered*: its site-packages come first, then servingbench's
(added by a .pth file), so it installs only what differs and its server still imports servingbench,
torch and the model code from the main environment. `--system-site-packages` would layer over the
system Python instead, which has none of them.

They live inside the main environment, `<sys.prefix>/frameworks/<name>`, so removing it removes them.
"""
from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

from servingbench.errors import ServingbenchError

LAYER_PTH = "servingbench-main-env.pth"


def venv_dir(name: str) -> Path:
    return Path(sys.prefix) / "frameworks" / name


def venv_python(name: str) -> Path:
    return venv_dir(name) / "bin" / "python"


def venv_site_packages(name: str) -> Path:
    """Its site-packages: the layer is made by this Python, so of this Python's version."""
    return venv_dir(name) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def create_layered_venv(name: str, requirements: list[str], log=print) -> Path:
    """Create (or update) the environment and pip-install `requirements` into it; returns its python."""
    directory = venv_dir(name)
    if not venv_python(name).exists():
        log(f"creating {directory}")
        subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True)
    main_site = sysconfig.get_paths()["purelib"]
    # After the layer's own site-packages: what the layer installs wins over the main environment's.
    (venv_site_packages(name) / LAYER_PTH).write_text(f"import site; site.addsitedir({main_site!r})\n")
    log(f"installing into {directory}: {' '.join(requirements)}")
    done = subprocess.run([str(venv_python(name)), "-m", "pip", "install", "-q", *requirements])
    if done.returncode != 0:
        raise ServingbenchError(f"pip install into {directory} failed (exit {done.returncode}); see its output above")
    return venv_python(name)


def installed_versions(python: Path, distributions: tuple[str, ...]) -> dict[str, str] | None:
    """Versions of `distributions` as `python` sees them; None when one is missing or python can't run."""
    script = ("import importlib.metadata as m, json, sys\n"
              "print(json.dumps({d: m.version(d) for d in sys.argv[1:]}))")
    try:
        done = subprocess.run([str(python), "-c", script, *distributions], capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return json.loads(done.stdout) if done.returncode == 0 else None
