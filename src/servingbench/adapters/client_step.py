"""`client_preprocess: per_request`: a network_only framework's client preprocessing done for every request inside
the closed loop, so that its cost is in each latency and competes for the load host's CPU as a real client's would.

The load process calls `network_request` once per trial (load/contracts.py ClientStep): it rebuilds the framework's
adapter and the model's processing from the files the study saved, and returns the function that turns each planned
request (the raw sample, addressed as the real request) into the request the adapter sends.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from pydantic import BaseModel

from servingbench.load.contracts import ClientStep, PreparedRequest

NETWORK_REQUEST = f"{__name__}:network_request"


class NetworkRequestArgument(BaseModel):
    framework: str
    study: str  # the Study as JSON
    model: str  # the model's ModelEntry as JSON
    processing_dir: Path  # the model's processing files (LoadedModel.save_processing)


def network_request_step(adapter, model, loaded, processing_dir: Path) -> ClientStep:
    """The client step of `adapter` (network_only) for `model`; its processing files are written to `processing_dir`."""
    loaded.save_processing(processing_dir)
    argument = NetworkRequestArgument(framework=adapter.name, study=adapter.study.model_dump_json(),
                                      model=model.reference().model_dump_json(), processing_dir=processing_dir)
    return ClientStep(factory=NETWORK_REQUEST, argument=argument.model_dump_json())


def planned_request(prepared: PreparedRequest, data: bytes, content_type: str) -> PreparedRequest:
    """What the load loop is handed: the raw sample, addressed (path, protocol) as the real request."""
    return prepared.model_copy(update={"body": data, "headers": {"Content-Type": content_type},
                                       "client_preprocess_ms": 0.0})


def network_request(argument: str) -> Callable[[PreparedRequest], PreparedRequest]:
    from servingbench.adapters import get_adapter
    from servingbench.config import Study
    from servingbench.models import get_model
    from servingbench.models.base import Sample
    from servingbench.models.entry import ModelEntry

    given = NetworkRequestArgument.model_validate_json(argument)
    study = Study.model_validate_json(given.study)
    adapter = get_adapter(given.framework, study, "network_only")
    model = get_model(ModelEntry.model_validate_json(given.model), study.size, study.weights, study.seed)
    assert adapter.client_processing is not None, f"{adapter.name} has no client processing"
    adapter.client_processing.keep(model.name, model.load_processing(given.processing_dir))

    def prepare(planned: PreparedRequest) -> PreparedRequest:
        sample = Sample(planned.sample, planned.body, planned.headers.get("Content-Type", ""))
        return adapter.request(model, sample)

    return prepare
