"""What servingbench measures itself about each framework's usability, shown next to the study's
scores: install size, cold start, packaging effort, idle memory, and which models it served here."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from importlib import metadata

from servingbench.launch.venvs import venv_site_packages
from servingbench.results.schema import Deployment, Summary
from servingbench.results.tables import NOT_MEASURED
from servingbench.usability.scorecard import Scorecard


@dataclass(frozen=True)
class Evidence:
    framework: str
    install_bytes: int | None  # None: none of its distributions is installed here (or none is listed)
    missing_distributions: list[str] = field(default_factory=list)
    deployments: list[Deployment] = field(default_factory=list)
    served: list[str] = field(default_factory=list)  # models with at least one measured cell
    not_served: list[str] = field(default_factory=list)  # "model: status: reason"


def install_size(distributions: list[str], framework: str = "") -> tuple[int | None, list[str]]:
    """Bytes on disk of the installed distributions' files, and the names not installed. A framework
    with a layered environment (launch/venvs.py) has its distributions there."""
    layer = [str(site)] if framework and (site := venv_site_packages(framework)).is_dir() else []
    total, missing = 0, []
    for name in distributions:
        found = next(iter(metadata.distributions(name=name, path=layer + sys.path)), None)
        if found is None:
            missing.append(name)
            continue
        total += sum(path.stat().st_size for f in found.files or [] if (path := f.locate()).is_file())
    return (None if len(missing) == len(distributions) else total), missing


def _models_served(summary: Summary, framework: str) -> tuple[list[str], list[str]]:
    served, not_served = {}, {}
    for c in summary.cells:
        if c.framework != framework:
            continue
        if c.status in NOT_MEASURED:
            not_served.setdefault(c.model, f"{c.model}: {c.status}: {c.reason}")
        elif c.repetitions:
            served[c.model] = c.model
    return list(served), [text for model, text in not_served.items() if model not in served]


def gather_evidence(summary: Summary, scorecards: list[Scorecard]) -> list[Evidence]:
    """One entry per framework in the results, then per scorecard framework not run here."""
    cards = {card.framework: card for card in scorecards}
    frameworks = dict.fromkeys([c.framework for c in summary.cells] + list(cards))
    found = []
    for fw in frameworks:
        size, missing = install_size(cards[fw].distributions, fw) if fw in cards else (None, [])
        served, not_served = _models_served(summary, fw)
        found.append(Evidence(fw, size, missing, [d for d in summary.deployments if d.framework == fw],
                              served, not_served))
    return found
