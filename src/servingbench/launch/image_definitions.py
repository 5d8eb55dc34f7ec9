"""Image definitions for the frameworks whose server runs servingbench's own code.

TorchServe's handler, Triton's python backend model and the Python frameworks' apps import
servingbench, which no official image has. `servingbench images` writes, per framework, an Apptainer
definition file (`<framework>.def`) and its Dockerfile twin: python:3.11-slim, the CPU build of torch
2.13.0 (as setup.sh installs it), servingbench from its source tree with the framework's extra, then
the pins of its layered environment (they win, as they do there). Building them is the user's step:
`apptainer build images/<framework>.sif images/<framework>.def`, or `docker build` with the tag below.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import servingbench
from servingbench.errors import ServingbenchError

BASE_IMAGE = "python:3.11-slim"
TORCH = "torch==2.13.0"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
SOURCE_IN_IMAGE = "/opt/servingbench"
SOURCE_FILES = ("pyproject.toml", "README.md", "src")  # what pip needs to install servingbench from source


@dataclass(frozen=True)
class ImageRecipe:
    """What one framework's image holds besides Python: Debian packages, servingbench's extras, pinned packages."""

    framework: str
    extras: tuple[str, ...] = ()  # servingbench's pip extras besides `models`
    requirements: tuple[str, ...] = ()  # pip requirements installed last (a layered environment's pins)
    system_packages: tuple[str, ...] = ()  # Debian packages (TorchServe's Java)
    official_image: str | None = None  # the framework's own image, which lacks servingbench (a label, for reference)


def image_tag(framework: str) -> str:
    """The docker/podman name of a framework's built image, the default when the study runs in docker or podman."""
    return f"servingbench-{framework}:{servingbench.__version__}"


def sif_path(framework: str, image_dir: Path) -> Path:
    """Where apptainer looks for a framework's built image."""
    return image_dir / f"{framework}.sif"


def source_tree() -> Path:
    """servingbench's source tree (the image installs servingbench from it); only a checkout has one."""
    root = Path(servingbench.__file__).resolve().parents[2]
    if not all((root / name).exists() for name in SOURCE_FILES):
        raise ServingbenchError(f"no servingbench source tree at {root} (an image installs servingbench from its "
                                "source): run `servingbench images` from a checkout's environment")
    return root


def _install_lines(recipe: ImageRecipe) -> list[str]:
    """The shell commands both definitions run, in order."""
    pip = "python3 -m pip install --no-cache-dir"
    lines = []
    if recipe.system_packages:
        lines.append("apt-get update && apt-get install -y --no-install-recommends "
                     f"{' '.join(recipe.system_packages)} && rm -rf /var/lib/apt/lists/*")
    lines.append(f"{pip} {TORCH} --index-url {TORCH_CPU_INDEX}")  # the CPU build first: no CUDA build pulled in
    extras = ",".join(("models", *recipe.extras))
    lines.append(f"{pip} {shlex.quote(f'{SOURCE_IN_IMAGE}[{extras}]')}")
    if recipe.requirements:
        lines.append(f"{pip} {' '.join(shlex.quote(r) for r in recipe.requirements)}")
    return lines


def _labels(recipe: ImageRecipe) -> dict[str, str]:
    labels = {"org.servingbench.framework": recipe.framework, "org.servingbench.version": servingbench.__version__}
    if recipe.official_image:
        labels["org.servingbench.official-image"] = recipe.official_image
    return labels


def apptainer_definition(recipe: ImageRecipe, source: Path) -> str:
    """The Apptainer definition file: `apptainer build <framework>.sif <framework>.def`."""
    files = [f"    {source / name} {SOURCE_IN_IMAGE}/{name}" for name in SOURCE_FILES]
    return "\n".join([
        f"# servingbench {servingbench.__version__}: the {recipe.framework} server's image.",
        f"# Build: apptainer build {recipe.framework}.sif {recipe.framework}.def",
        "Bootstrap: docker",
        f"From: {BASE_IMAGE}",
        "",
        "%files",
        *files,
        "",
        "%post",
        "    set -e",
        *(f"    {line}" for line in _install_lines(recipe)),
        "",
        "%labels",
        *(f"    {name} {value}" for name, value in _labels(recipe).items()),
        "",
        "%runscript",
        '    exec "$@"',  # servingbench runs its server command with `apptainer exec`; `run` does the same
        "",
    ])


def dockerfile(recipe: ImageRecipe, source: Path) -> str:
    """The Dockerfile twin, built with servingbench's source tree as the context."""
    return "\n".join([
        f"# servingbench {servingbench.__version__}: the {recipe.framework} server's image.",
        f"# Build: docker build -f {recipe.framework}.Dockerfile -t {image_tag(recipe.framework)} {source}",
        f"FROM {BASE_IMAGE}",
        *(f"COPY {name} {SOURCE_IN_IMAGE}/{name}" for name in SOURCE_FILES),
        *(f"RUN {line}" for line in _install_lines(recipe)),
        "LABEL " + " ".join(f'{name}="{value}"' for name, value in _labels(recipe).items()),
        "",
    ])


def write_definitions(recipe: ImageRecipe, out: Path) -> tuple[Path, Path]:
    """`<framework>.def` and `<framework>.Dockerfile` in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    definition, docker = out / f"{recipe.framework}.def", out / f"{recipe.framework}.Dockerfile"
    source = source_tree()
    definition.write_text(apptainer_definition(recipe, source))
    docker.write_text(dockerfile(recipe, source))
    return definition, docker
