"""The KServe v2 protocol over gRPC: requests serialised once, before timing, to raw bytes.

The load engine sends those bytes through a plain gRPC unary call (no stubs on the hot path);
the protobuf messages come from tritonclient's generated `service_pb2`.
"""
from __future__ import annotations

import numpy as np

from servingbench.adapters.kserve_v2 import DATATYPES, datatype

INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"


def _messages():
    try:
        from tritonclient.grpc import service_pb2
    except ImportError:
        from servingbench.errors import ServingbenchError

        raise ServingbenchError("gRPC needs tritonclient's protocol messages: pip install 'tritonclient[grpc]>=2.60'") \
            from None
    return service_pb2


def encode_request(model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> bytes:
    pb = _messages()
    request = pb.ModelInferRequest(model_name=model)
    for name, array in inputs.items():
        tensor = request.inputs.add()
        tensor.name, tensor.datatype = name, datatype(array)
        tensor.shape.extend(array.shape)
        request.raw_input_contents.append(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes())
    for name in outputs:
        request.outputs.add().name = name
    return request.SerializeToString()


def decode_response(body: bytes) -> dict[str, np.ndarray]:
    response = _messages().ModelInferResponse.FromString(body)
    return {out.name: np.frombuffer(raw, dtype=np.dtype(DATATYPES[out.datatype]).newbyteorder("<")).reshape(out.shape)
            for out, raw in zip(response.outputs, response.raw_output_contents)}
