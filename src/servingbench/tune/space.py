"""The settings a search may try for one framework: its knobs (sized to the host) and the candidate
configurations they make, each a dict of dotted study keys -> values."""
from __future__ import annotations

import itertools
import math
import os
from typing import Any

from servingbench.adapters.base import Adapter, Host, Knob
from servingbench.errors import ServingbenchError
from servingbench.monitor.resources import Gpus

Settings = dict[str, Any]


def detect_host() -> Host:
    """The cores this process may run on (its CPU affinity, as a container or SLURM grants them) and the GPUs."""
    return Host(cores=len(os.sched_getaffinity(0)), gpus=len(Gpus().handles))


def chosen_knobs(adapter: Adapter, host: Host, names: list[str] | None) -> list[Knob]:
    """The adapter's knobs, only those named when `names` is given; those that others need come first."""
    knobs = [k for k in adapter.knobs(host) if names is None or k.name in names]
    return sorted(knobs, key=lambda k: k.needs is not None)


def unknown_knob_names(names: list[str], knobs_by_framework: dict[str, list[Knob]]) -> list[str]:
    """Names that no chosen framework declares: a typo, not a setting someone else lacks."""
    known = {k.name for knobs in knobs_by_framework.values() for k in knobs}
    return [n for n in names if n not in known]


def normalized(settings: Settings, knobs: list[Knob], host: Host) -> Settings | None:
    """The settings with knobs that don't matter (their `needs` off) at their first value; None when they ask for
    more cores than the host has."""
    by_name = {k.name: k for k in knobs}
    out = dict(settings)
    for knob in knobs:
        needed = by_name.get(knob.needs) if knob.needs else None
        if needed is not None and out[needed.key] == needed.values[0]:
            out[knob.key] = knob.values[0]
    cores = math.prod(out[k.key] for k in knobs if k.uses_cores)
    return out if cores <= host.cores else None


def grid(knobs: list[Knob], host: Host) -> list[Settings]:
    """Every distinct feasible combination, in the knobs' order of values."""
    found: list[Settings] = []
    for values in itertools.product(*(k.values for k in knobs)):
        settings = normalized({k.key: v for k, v in zip(knobs, values)}, knobs, host)
        if settings is not None and settings not in found:
            found.append(settings)
    return found


def current_settings(adapter: Adapter, knobs: list[Knob]) -> Settings:
    """What the study (with the adapter's option defaults) sets each knob to: the default candidate's settings."""
    study = adapter.study.model_dump(mode="json")
    prefix = f"server.options.{adapter.name}."
    current: Settings = {}
    for knob in knobs:
        if knob.key.startswith(prefix):
            current[knob.key] = adapter.settings[knob.key.removeprefix(prefix)]
            continue
        value: Any = study
        for part in knob.key.split("."):
            if not isinstance(value, dict) or part not in value:
                raise ServingbenchError(f"{adapter.name}: knob {knob.name} sets {knob.key}, which is not a study "
                                        "setting")
            value = value[part]
        current[knob.key] = value
    return current


def candidate_id(settings: Settings, knobs: list[Knob]) -> str:
    """The settings in words, e.g. "workers=2 threads=1 batch_size=4"."""
    return " ".join(f"{k.name}={settings[k.key]}" for k in knobs if k.key in settings) or "(no settings)"
