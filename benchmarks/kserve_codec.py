#!/usr/bin/env python3
"""Is servingbench's KServe v2 binary-tensor codec cheaper per request than tritonclient's?

    .venv/bin/python benchmarks/kserve_codec.py [--repeat 5] [--seconds 0.5]

Times, with timeit (best of --repeat runs, µs per call), encoding a request and decoding an answer
both ways: servingbench.adapters.kserve_v2 and tritonclient.http's static
InferenceServerClient.generate_request_body / parse_response_body (+ InferResult.as_numpy).
tritonclient needs the JSON header's length to decode, which the HTTP answer's
Inference-Header-Content-Length gives; kserve_v2.decode_response(body) gets only the body, so the
table has tritonclient's decode both given that length and finding it as decode_response would.
"""
from __future__ import annotations

import argparse
import json
import timeit
from functools import partial

import numpy as np
import tritonclient.http as triton_http

from servingbench.adapters import kserve_v2

INPUT, OUTPUT = "INPUT__0", "OUTPUT__0"
# (case, request input shape, answer output shape): the study's image classifiers and speech model.
CASES = [("resnet50", (1, 3, 224, 224), (1, 1000)), ("wav2vec2", (1, 50000), (1, 156, 32))]


def answer_body(output: np.ndarray) -> tuple[bytes, int]:
    """An answer as Triton sends it with binary outputs: (body, JSON header length)."""
    blob = output.astype("<f4").tobytes()
    header = json.dumps({"model_name": "m", "model_version": "1", "outputs": [
        {"name": OUTPUT, "datatype": "FP32", "shape": list(output.shape),
         "parameters": {"binary_data_size": len(blob)}}]}).encode()
    return header + blob, len(header)


def tritonclient_encode(tensor: np.ndarray) -> tuple[bytes, int | None]:
    infer_input = triton_http.InferInput(INPUT, list(tensor.shape), "FP32")
    infer_input.set_data_from_numpy(tensor, binary_data=True)
    requested = triton_http.InferRequestedOutput(OUTPUT, binary_data=True)
    return triton_http.InferenceServerClient.generate_request_body([infer_input], outputs=[requested])


def tritonclient_decode(body: bytes, header_length: int) -> np.ndarray:
    return triton_http.InferenceServerClient.parse_response_body(body, header_length=header_length).as_numpy(OUTPUT)


def tritonclient_decode_body_only(body: bytes) -> np.ndarray:
    """What decode_response(body) would cost on tritonclient: the header's end found in the body first."""
    _, header_end = json.JSONDecoder().raw_decode(body.decode("latin-1"))
    return tritonclient_decode(body, header_end)


def check_same_results(tensor: np.ndarray, output: np.ndarray) -> None:
    """Both codecs must produce the same bytes on the wire and the same arrays, or the timing means nothing."""
    ours, _ = kserve_v2.encode_request({INPUT: tensor}, [OUTPUT])
    theirs, header_length = tritonclient_encode(tensor)
    assert json.loads(ours[:len(ours) - tensor.nbytes]) == json.loads(theirs[:header_length])
    assert ours[-tensor.nbytes:] == theirs[-tensor.nbytes:]
    body, header_length = answer_body(output)
    assert np.array_equal(kserve_v2.decode_response(body)[OUTPUT], tritonclient_decode(body, header_length))


def per_call_us(call, repeat: int, seconds: float) -> float:
    timer = timeit.Timer(call)
    number, _ = timer.autorange()
    number = max(1, int(number * seconds / 0.2))  # autorange aims at 0.2 s per run
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def rows(repeat: int, seconds: float):
    rng = np.random.default_rng(0)
    for case, input_shape, output_shape in CASES:
        tensor = rng.standard_normal(input_shape, dtype=np.float32)
        output = rng.standard_normal(output_shape, dtype=np.float32)
        check_same_results(tensor, output)
        body, header_length = answer_body(output)
        yield (f"{case} encode {list(input_shape)}",
               per_call_us(partial(kserve_v2.encode_request, {INPUT: tensor}, [OUTPUT]), repeat, seconds),
               per_call_us(partial(tritonclient_encode, tensor), repeat, seconds), None)
        yield (f"{case} decode {list(output_shape)}",
               per_call_us(partial(kserve_v2.decode_response, body), repeat, seconds),
               per_call_us(partial(tritonclient_decode, body, header_length), repeat, seconds),
               per_call_us(partial(tritonclient_decode_body_only, body), repeat, seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5, help="time per timing run")
    args = parser.parse_args()
    header = ("operation", "servingbench µs", "tritonclient µs", "tc body-only µs", "tc/ours")
    print(f"{header[0]:<34} {header[1]:>15} {header[2]:>15} {header[3]:>15} {header[4]:>8}")
    for name, ours, theirs, body_only in rows(args.repeat, args.seconds):
        body_text = f"{body_only:15.1f}" if body_only is not None else f"{'-':>15}"
        print(f"{name:<34} {ours:15.1f} {theirs:15.1f} {body_text} {theirs / ours:8.2f}")


if __name__ == "__main__":
    main()
