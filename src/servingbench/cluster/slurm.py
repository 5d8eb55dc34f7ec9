"""`servingbench slurm`: one sbatch script per framework x model of a study, every job writing into one shared
folder that `servingbench report SHARED` merges into one study.

    SHARED/study.yaml               the resolved study, read by every job
    SHARED/slurm/<F>-<M>.sbatch     the scripts: readable, editable, `sbatch` them yourself after --dry-run
    SHARED/slurm/logs/              each job's stdout and stderr (<F>-<M>-<job id>.out/.err)
    SHARED/slurm/jobs.json          what was submitted: job ids, scripts, result folders
    SHARED/jobs/<F>-<M>/            each job's results: an ordinary `servingbench run` folder
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from jinja2 import Environment, StrictUndefined
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from servingbench.atomic import write_atomically
from servingbench.config import Study, dump_study
from servingbench.errors import ServingbenchError
from servingbench.results.merge import JOB_FOLDERS

DEFAULT_MASTER_PORT = 5557  # Locust's own default master port
SCRIPTS = "slurm"
JOBS_FILE = "jobs.json"
SBATCH_TIMEOUT_S = 120

# SLURM's --time forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S
_TIME = re.compile(r"\d+(:\d{1,2}){0,2}|\d+-\d{1,2}(:\d{1,2}){0,2}")
# partitions, accounts and GRES specs ("gpu:1", "gpu:a100:2,shard:1"): one word each, never a second line
_WORD = re.compile(r"[\w.:,+-]+")


class SlurmResources(BaseModel):
    """What each job asks SLURM for (the CLI flags)."""

    model_config = ConfigDict(extra="forbid")

    partition: str
    gres: str | None = Field(None, description="generic resources per node, e.g. gpu:1")
    time: str | None = Field(None, description="the job's time limit, e.g. 01:00:00")
    account: str | None = None
    load_nodes: int = Field(0, ge=0, description="nodes for load workers besides the server's (0: all on one)")
    master_port: int = Field(DEFAULT_MASTER_PORT, ge=1, le=65535)

    @field_validator("partition", "gres", "account")
    @classmethod
    def _one_word(cls, value: str | None) -> str | None:
        if value is not None and not _WORD.fullmatch(value):
            raise ValueError(f"{value!r} is not a SLURM name (letters, digits, . : , + - _)")
        return value

    @field_validator("time")
    @classmethod
    def _slurm_time(cls, value: str | None) -> str | None:
        if value is not None and not _TIME.fullmatch(value):
            raise ValueError(f"{value!r} is not a SLURM time limit: HH:MM:SS, MM, or D-HH:MM:SS")
        return value


def slurm_resources(**values: object) -> SlurmResources:
    try:
        return SlurmResources.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        message = err["msg"].removeprefix("Value error, ")
        raise ServingbenchError(f"--{str(err['loc'][0]).replace('_', '-')}: {message}") from None


class SlurmJob(BaseModel):
    """One framework x model of the study as one batch job."""

    study: str = Field(description="the study's name")
    framework: str
    model: str
    study_file: Path
    script: Path
    out: Path = Field(description="the job's results folder")
    logs: Path = Field(description="the folder of its stdout and stderr files")
    servingbench: list[str] = Field(description="the servingbench command, by absolute path")

    @property
    def name(self) -> str:
        return job_name(self.framework, self.model)

    def run_argv(self) -> list[str]:
        return [*self.servingbench, "run", str(self.study_file), "--frameworks", self.framework,
                "--models", self.model, "--out", str(self.out)]


class SubmittedJob(BaseModel):
    job_id: str
    framework: str
    model: str
    script: Path
    out: Path


class SubmittedJobs(BaseModel):
    """SHARED/slurm/jobs.json."""

    partition: str
    jobs: list[SubmittedJob]


def job_name(framework: str, model: str) -> str:
    """The job's script and folder name: `<framework>-<model>`, safe as a file name."""
    return re.sub(r"[^\w.-]", "_", f"{framework}-{model}")


def servingbench_command() -> list[str]:
    """The servingbench this process runs from, by absolute path: jobs run this very install, whatever PATH
    the compute nodes give them (a venv's python is a link: kept as it is, not resolved)."""
    python = Path(sys.executable).absolute()
    script = python.parent / "servingbench"
    return [str(script)] if script.is_file() else [str(python), "-m", "servingbench.cli"]


_SCRIPT = Environment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                      autoescape=False).from_string("""\
#!/bin/bash
# servingbench study '{{ job.study }}': {{ job.framework }} serving {{ job.model }}.
# Written by `servingbench slurm`; edit it freely, then submit it with: sbatch {{ job.script }}
# Its results go to {{ job.out }}; when every job is done: {{ report }}
#SBATCH --job-name=sb-{{ job.name }}
#SBATCH --partition={{ r.partition }}
{% if r.account %}
#SBATCH --account={{ r.account }}
{% endif %}
#SBATCH --nodes={{ r.load_nodes + 1 }}
#SBATCH --ntasks-per-node=1
# Whole nodes: the server and the load generator share no cores with other jobs, so every run gets the same.
#SBATCH --exclusive
{% if r.gres %}
{% if r.load_nodes %}
# --gres is per node: the load nodes get it too (a heterogeneous job would spare them).
{% endif %}
#SBATCH --gres={{ r.gres }}
{% endif %}
{% if r.time %}
#SBATCH --time={{ r.time }}
{% endif %}
#SBATCH --output={{ job.logs }}/{{ job.name }}-%j.out
#SBATCH --error={{ job.logs }}/{{ job.name }}-%j.err
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"

{% if r.load_nodes %}
# The batch script runs on the allocation's first node: the server and the study's load master run here,
# load workers on the other {{ r.load_nodes }}, connecting to the master (they take trial after trial until stopped).
master=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun --nodes={{ r.load_nodes }} --ntasks={{ r.load_nodes }} --exclude="$master" {{ worker }} --master "$master:{{ r.master_port }}" &
workers=$!
trap 'kill "$workers" 2>/dev/null || true' EXIT

# The study waits for the {{ r.load_nodes }} workers before each trial and sends no load from this node.
{{ run }} \\
  --load-workers 0 --remote-workers {{ r.load_nodes }} --master-bind 0.0.0.0:{{ r.master_port }}
{% else %}
# The server and the load generator in this one allocation, as in the study.
{{ run }}
{% endif %}
""")


def render_script(job: SlurmJob, resources: SlurmResources, shared: Path) -> str:
    return _SCRIPT.render(job=job, r=resources, run=shlex.join(job.run_argv()),
                          worker=shlex.join([*job.servingbench, "worker"]),
                          report=shlex.join([*job.servingbench, "report", str(shared)]))


def write_scripts(study: Study, shared: Path, resources: SlurmResources) -> list[SlurmJob]:
    """SHARED/study.yaml and one script per framework x model; each job's results folder is made now, so that
    `servingbench report` can name the jobs that have no results yet."""
    if study.tune is not None:
        raise ServingbenchError("servingbench slurm runs studies; a study with a tune: section is for "
                                "`servingbench tune`")
    shared = shared.expanduser().resolve()
    scripts = shared / SCRIPTS
    try:
        (scripts / "logs").mkdir(parents=True, exist_ok=True)  # SLURM does not create the folder of --output
        study_file = shared / "study.yaml"
        write_atomically(study_file, dump_study(study, header_values=True))  # the jobs send them
        jobs = []
        for framework in study.frameworks:
            for model in study.models:
                name = job_name(framework, model.name)
                job = SlurmJob(study=study.name, framework=framework, model=model.name, study_file=study_file,
                               script=scripts / f"{name}.sbatch", out=shared / JOB_FOLDERS / name,
                               logs=scripts / "logs", servingbench=servingbench_command())
                job.out.mkdir(parents=True, exist_ok=True)
                write_atomically(job.script, render_script(job, resources, shared))
                jobs.append(job)
    except OSError as exc:
        raise ServingbenchError(f"cannot write the scripts into {shared}: {exc.strerror}") from None
    return jobs


def submit(jobs: list[SlurmJob], partition: str) -> SubmittedJobs:
    """`sbatch --parsable` each script; SHARED/slurm/jobs.json lists what was submitted (also when one fails)."""
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise ServingbenchError("sbatch is not on PATH: run this on a SLURM login node, or add --dry-run to only "
                                "write the scripts")
    submitted = SubmittedJobs(partition=partition, jobs=[])
    for job in jobs:
        done = subprocess.run([sbatch, "--parsable", str(job.script)], capture_output=True, text=True,
                              timeout=SBATCH_TIMEOUT_S)
        if done.returncode != 0:
            reason = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
            before = ""
            if submitted.jobs:
                _save(submitted, job.script.parent)
                before = f" ({len(submitted.jobs)} submitted before it, in {job.script.parent / JOBS_FILE})"
            raise ServingbenchError(f"sbatch {job.script} failed: {reason}{before}")
        job_id = done.stdout.strip().split(";")[0]  # --parsable: "id" or "id;cluster"
        submitted.jobs.append(SubmittedJob(job_id=job_id, framework=job.framework, model=job.model,
                                           script=job.script, out=job.out))
    if jobs:
        _save(submitted, jobs[0].script.parent)
    return submitted


def _save(submitted: SubmittedJobs, scripts: Path) -> None:
    write_atomically(scripts / JOBS_FILE, submitted.model_dump_json(indent=2) + "\n")
