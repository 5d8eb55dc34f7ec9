"""`endpoint`: a server someone else runs. Nothing is packaged or launched; samples (or a fixed
payload file) are sent to the configured URL. Its answers can't be compared with the reference,
since their format is the server's own."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from servingbench.adapters.base import Adapter, Artifact, Availability
from servingbench.config import EndpointSettings
from servingbench.errors import ServingbenchError
from servingbench.launch.contracts import LaunchSpec, Ports
from servingbench.load.contracts import PreparedRequest
from servingbench.models.base import LoadedModel, ModelSpec, Output, Sample

ENDPOINT_REACH_TIMEOUT_S = 10.0  # someone else's server is up or not: no start-up to wait for


def split_url(url: str) -> tuple[str, str]:
    """(base URL, path with query) of an http(s) URL, or a one-line error."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServingbenchError(f"not an http(s) URL: '{url}'")
    path = parts.path or "/"
    return f"{parts.scheme}://{parts.netloc}", path + (f"?{parts.query}" if parts.query else "")


def endpoint_request(settings: EndpointSettings, sample: Sample | None) -> PreparedRequest:
    """The request for a URL: the payload file if one is set, else the sample's bytes, else no body."""
    _, path = split_url(settings.url)
    if settings.payload is not None:
        try:
            body, name = settings.payload.read_bytes(), settings.payload.name
        except OSError as exc:
            raise ServingbenchError(f"cannot read payload {settings.payload}: {exc.strerror}") from None
        content_type = settings.content_type or "application/octet-stream"
    elif sample is not None:
        body, name, content_type = sample.data, sample.name, settings.content_type or sample.content_type
    else:
        body, name, content_type = b"", path, settings.content_type
    headers = dict(settings.headers)
    if body and content_type:
        headers.setdefault("Content-Type", content_type)
    return PreparedRequest(method=settings.method, path=path, body=body, headers=headers, sample=name)


class EndpointAdapter(Adapter):
    name = "endpoint"
    description = "a server you run yourself (study field endpoint.url)"

    def availability(self) -> Availability:
        if self.study.endpoint is None:
            return Availability(False, "no endpoint configured: set endpoint.url in the study file")
        return Availability(True, details={"url": self.study.endpoint.url})

    def package(self, model: ModelSpec, loaded: LoadedModel, workdir: Path) -> Artifact:
        return Artifact(self.name, model.name, workdir)

    def launch_spec(self, artifact: Artifact, ports: Ports, run_dir: Path) -> LaunchSpec:
        base, _ = split_url(self.study.endpoint.url)
        return LaunchSpec(base_url=base, ready_url=self.study.endpoint.url, ready_status=None,
                          ready_timeout_s=ENDPOINT_REACH_TIMEOUT_S)

    def request(self, model: ModelSpec, sample: Sample) -> PreparedRequest:
        return endpoint_request(self.study.endpoint, sample)

    def decode(self, model: ModelSpec, status: int, body: bytes) -> Output | None:
        return None
