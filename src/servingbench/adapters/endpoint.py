"""`endpoint`: a server someone else runs. Nothing is packaged or launched; samples (or payloads: a
file, a folder of files, a JSONL file) are sent to the configured URL. Its answers can't be compared
with the reference, since their format is the server's own."""
from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from urllib.parse import urlsplit

from servingbench.adapters.base import Adapter, Artifact, Availability
from servingbench.adapters.http_metrics import scrape_totals
from servingbench.config import EndpointSettings
from servingbench.errors import ServingbenchError
from servingbench.launch.contracts import LaunchSpec, Ports
from servingbench.load.contracts import PreparedRequest
from servingbench.models.base import LoadedModel, ModelSpec, Output, Sample

ENDPOINT_REACH_TIMEOUT_S = 10.0  # someone else's server is up or not: no start-up to wait for


def split_url(url: str, what: str = "URL") -> tuple[str, str]:
    """(base URL, path with query) of an http(s) URL, or a one-line error naming `what` it is."""
    if not _well_formed(url):
        raise ServingbenchError(f"not an http(s) {what}: {url!r}")
    parts = urlsplit(url)
    if "@" in parts.netloc:  # never sent, and it would be saved with the results: refused without echoing it
        raise ServingbenchError(f"the {what} carries credentials (user:password@), which are neither sent nor saved; "
                                "pass them as a header instead, e.g. --header 'Authorization: Basic <base64>'")
    path = parts.path or "/"
    return f"{parts.scheme}://{parts.netloc}", path + (f"?{parts.query}" if parts.query else "")


def _well_formed(url: str) -> bool:
    """An http(s) URL that HTTP clients take: urlsplit, .port and the IDNA codec raise on a malformed host
    ('http://[::1:1/'), a port out of range, an empty host label; a request line is ASCII without spaces."""
    try:
        parts = urlsplit(url)
        return (parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != -1
                and bool(parts.hostname.encode("idna")) and url.isascii() and url.isprintable() and " " not in url)
    except (ValueError, UnicodeError):
        return False


def is_payload_set(payload: Path) -> bool:
    """A folder or a JSONL file: several bodies, sent in turn."""
    return payload.is_dir() or payload.suffix == ".jsonl"


def read_payloads(payload: Path) -> list[Sample]:
    """The bodies a payload names, each with a distinct name and the content type it implies: the file itself, every regular file of a folder
    (sorted by name), or every non-blank line of a JSONL file (`line-<n>`, one JSON document each)."""
    try:
        if payload.is_dir():
            files = sorted(p for p in payload.iterdir() if p.is_file())
            if not files:
                raise ServingbenchError(f"payload folder {payload} has no files")
            return [_file_payload(p) for p in files]
        if payload.suffix == ".jsonl":
            return _jsonl_payloads(payload)
        return [_file_payload(payload)]
    except OSError as exc:
        raise ServingbenchError(f"cannot read payload {exc.filename or payload}: {exc.strerror}") from None


def _file_payload(path: Path) -> Sample:
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Sample(path.name, path.read_bytes(), content_type)


def _jsonl_payloads(path: Path) -> list[Sample]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ServingbenchError(f"{path}: not UTF-8 text, so not JSON lines") from None
    payloads = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            json.loads(line)
        except json.JSONDecodeError as exc:
            raise ServingbenchError(f"{path}: line {number} is not JSON: {exc.msg}") from None
        payloads.append(Sample(f"line-{number}", line.strip().encode(), "application/json"))
    if not payloads:
        raise ServingbenchError(f"{path} has no JSON lines")
    return payloads


def endpoint_requests(settings: EndpointSettings) -> list[PreparedRequest]:
    """`servingbench load`'s requests: one per payload (read_payloads), or one without a body."""
    if settings.payload is None:
        return [endpoint_request(settings, None)]
    return [endpoint_request(settings, payload) for payload in read_payloads(settings.payload)]


def endpoint_request(settings: EndpointSettings, sample: Sample | None) -> PreparedRequest:
    """The request for a URL with the sample's bytes (a payload or a model's sample), else with no body;
    `content_type` in the settings wins over the sample's."""
    _, path = split_url(settings.url)
    if sample is not None:
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
    runs_servingbench_code = False  # it starts no server: nothing to put in a container

    def availability(self) -> Availability:
        if self.study.endpoint is None:
            return Availability(False, "no endpoint configured: set endpoint.url in the study file")
        payload = self.study.endpoint.payload
        if payload is not None and is_payload_set(payload):
            # A study prepares one request per model sample; a set of payloads has no sample to pair with.
            return Availability(False, f"endpoint.payload {payload} is a payload set: `servingbench load` sends "
                                       "sets; a study sends one payload file or the model's samples")
        return Availability(True, details={"url": self.study.endpoint.url})

    def package(self, model: ModelSpec, loaded: LoadedModel, workdir: Path) -> Artifact:
        return Artifact(self.name, model.name, workdir)

    def launch_spec(self, artifact: Artifact, ports: Ports, run_dir: Path) -> LaunchSpec:
        base, _ = split_url(self.study.endpoint.url)
        return LaunchSpec(base_url=base, ready_url=self.study.endpoint.url, ready_status=None,
                          ready_timeout_s=ENDPOINT_REACH_TIMEOUT_S)

    def request(self, model: ModelSpec, sample: Sample) -> PreparedRequest:
        settings = self.study.endpoint
        if settings.payload is not None:
            sample = read_payloads(settings.payload)[0]
        return endpoint_request(settings, sample)

    def decode(self, model: ModelSpec, status: int, body: bytes) -> Output | None:
        return None

    def scrape_metrics(self, launch: LaunchSpec, ports: Ports) -> dict[str, float]:
        url = self.study.endpoint.metrics_url
        return scrape_totals(url) if url else {}
