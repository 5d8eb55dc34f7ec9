"""The `model.py` of the end_to_end pipeline's `<name>_preprocess` and `<name>_postprocess` Triton models.

Triton's ensemble `<name>` chains them around the network model `<name>_network`:
  sample (uint8: the raw JPEG, WAV or text) -> preprocess -> network -> postprocess -> answer (uint8: JSON)
Both run servingbench's own processing of the model (LoadedModel.preprocess / postprocess), loaded
from the processing files (processor, tokenizer, labels) and the manifest beside this file, which
the adapter writes with `loaded.save_processing`. Which of the two steps this model is comes from
its config.pbtxt parameter `step`. The tensor names come from the config, which Triton hands over.

The sample and the answer are UINT8 vectors (a batch of one: [1, bytes]), not BYTES tensors: this stub
(Triton 2.51's python backend) hands a BYTES input to `as_numpy()` as uninitialised memory under
numpy 2, as it does numeric tensors, so every tensor here crosses the stub boundary through DLPack,
which has no strings but carries bytes as uint8 intact.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        # The stub's embedded interpreter ignores PYTHONPATH, where a user's model module or plugin (or servingbench
        # itself, run from source) may be: done here, not in a servingbench helper, as it must come before that import.
        for entry in reversed(os.environ.get("PYTHONPATH", "").split(os.pathsep)):
            if entry and entry not in sys.path:
                sys.path.insert(0, entry)
        import torch

        from servingbench.adapters.served_model import read_manifest
        from servingbench.models import get_model

        directory = Path(args["model_repository"]) / args["model_version"]
        manifest = read_manifest(directory)
        torch.set_num_threads(manifest.threads)
        self.loaded = get_model(manifest.model, manifest.size, str(directory)).load_processing(directory)
        config = json.loads(args["model_config"])
        self.step = config["parameters"]["step"]["string_value"]
        self.input_name, self.output_name = config["input"][0]["name"], config["output"][0]["name"]

    def execute(self, requests):
        """One response per request; a request that fails (not an image, ...) gets an error, the others answers."""
        responses = []
        for request in requests:
            try:
                tensor = pb_utils.get_input_tensor_by_name(request, self.input_name)
                output = self._preprocess(tensor) if self.step == "preprocess" else self._postprocess(tensor)
                responses.append(pb_utils.InferenceResponse(output_tensors=[output]))
            except Exception as exc:  # noqa: BLE001 - the request's error, not the server's
                error = pb_utils.TritonError(f"{self.step}: {type(exc).__name__}: {exc}",
                                             *([pb_utils.TritonError.INVALID_ARG]
                                               if hasattr(pb_utils.TritonError, "INVALID_ARG") else []))
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
        return responses

    def _preprocess(self, tensor):
        """The sample's bytes (uint8, [1, bytes]) -> the network's input, a batch of one."""
        import torch
        from torch.utils.dlpack import from_dlpack, to_dlpack

        sample = from_dlpack(tensor.to_dlpack())
        if sample.dim() != 2 or sample.shape[0] != 1:
            raise ValueError(f"one sample per request, as uint8 [1, bytes]; got shape {list(sample.shape)}")
        with torch.inference_mode():
            network_input = self.loaded.preprocess(sample.numpy().tobytes())
        return pb_utils.Tensor.from_dlpack(self.output_name, to_dlpack(network_input.contiguous()))

    def _postprocess(self, tensor):
        """The network's output for one sample -> the task output's JSON text (uint8, [1, bytes])."""
        import torch
        from torch.utils.dlpack import from_dlpack, to_dlpack

        with torch.inference_mode():
            answer = self.loaded.postprocess(from_dlpack(tensor.to_dlpack()))
        text = torch.frombuffer(bytearray(json.dumps(answer).encode()), dtype=torch.uint8)
        return pb_utils.Tensor.from_dlpack(self.output_name, to_dlpack(text.reshape(1, -1)))
