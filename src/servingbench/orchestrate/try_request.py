"""What `servingbench serve` prints: a request that really works against the server it started, as a
ready `curl` line and a `servingbench load` line, with the framework's own request body in a file."""
from __future__ import annotations

import shlex

from servingbench.models.base import Sample
from servingbench.orchestrate.deployment import Deployed

REQUEST_FILE = "request.bin"


def try_lines(live: Deployed, sample: Sample) -> list[str]:
    request = live.adapter.request(live.model, sample)
    body_file = live.run_dir / REQUEST_FILE
    body_file.write_bytes(request.body)
    url = f"{live.launch.base_url}{request.path}"
    if request.protocol == "grpc":
        return [f"try: a gRPC unary call to {request.path} at {live.launch.base_url.split('://', 1)[-1]} "
                f"with the serialised request message in {body_file} (sample {sample.name})"]
    headers = [part for name, value in request.headers.items() for part in ("-H", f"{name}: {value}")]
    curl = ["curl", "-sS", "-X", request.method, url, *headers, "--data-binary", f"@{body_file}"]
    content_type = request.headers.get("Content-Type")
    load = ["servingbench", "load", url, "--method", request.method, "--payload", str(body_file),
            *(["--content-type", content_type] if content_type else []),
            *(part for name, value in request.headers.items() if name != "Content-Type"
              for part in ("--header", f"{name}: {value}")),
            "--users", "1,4", "--duration", "10"]
    return [f"try: {shlex.join(curl)}", f"load it: {shlex.join(load)}"]
