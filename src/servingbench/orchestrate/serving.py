"""One framework serving one model, ready for load: deployed (the evidence of what it took recorded), its requests
prepared and its answers checked against the in-process model. Shared by studies and tuning."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from servingbench.adapters.base import Adapter, Artifact
from servingbench.adapters.client_step import network_request_step, planned_request
from servingbench.models.base import LoadedModel, ModelSpec, Output, Sample
from servingbench.monitor.resources import ProcessTree
from servingbench.orchestrate.correctness import check_correctness
from servingbench.orchestrate.deployment import Deployed, deployed, package_stats
from servingbench.orchestrate.trials import Target
from servingbench.results.schema import Correctness, Deployment


@dataclass(frozen=True)
class Serving:
    live: Deployed
    target: Target
    correct: Correctness | None  # None: the study does not check answers

    @property
    def client_preprocess_ms(self) -> float:
        """Mean preprocessing per sample done before the trial (0 where the load loop does it per request)."""
        requests = self.target.requests
        return sum(r.client_preprocess_ms for r in requests) / len(requests)


@contextmanager
def serving(adapter: Adapter, model: ModelSpec, loaded: LoadedModel, samples: list[Sample],
            references: dict[str, Output], run_dir: Path, startup_timeout_s: float, check_timeout_s: float | None,
            record: Callable[[Deployment], None]) -> Iterator[Serving]:
    """Package, launch (timed: the cold start), check answers unless `check_timeout_s` is None. `record` gets the
    Deployment once packaged (so a server that never gets ready still leaves its evidence) and again when ready."""
    deployment = Deployment(framework=adapter.name, model=model.name, pipeline=adapter.pipeline, status="failed",
                            device=adapter.placement.label)

    def record_package(artifact: Artifact) -> None:
        files, size, lines = package_stats(artifact, run_dir)
        deployment.package_files, deployment.package_bytes, deployment.package_text_lines = files, size, lines
        deployment.runtime = artifact.runtime
        record(deployment)

    with deployed(adapter, model, loaded, run_dir, startup_timeout_s, on_packaged=record_package) as live:
        deployment.status = "ok"
        deployment.startup_s = live.server.startup_s
        deployment.idle_rss_mb = ProcessTree(live.server.pid).rss_mb() if live.server.pid else None
        record(deployment)
        requests = [adapter.request(model, s) for s in samples]
        step = None
        if adapter.study.client_preprocess == "per_request" and adapter.pipeline == "network_only" \
                and adapter.client_processing is not None:
            step = network_request_step(adapter, model, loaded, run_dir / "client-processing")
            requests = [planned_request(r, s.data, s.content_type) for r, s in zip(requests, samples)]
        target = Target(adapter.name, model.name, live.launch.base_url, requests, live.scrape_metrics, live.server,
                        pipeline=adapter.pipeline, client_step=step)
        correct = None if check_timeout_s is None else check_correctness(
            adapter, model, samples, references, live.launch.base_url, check_timeout_s)
        yield Serving(live, target, correct)
