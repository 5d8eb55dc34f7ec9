"""The `model.py` servingbench puts in every Triton python-backend network model.

Triton's python backend runs it in a stub process with the Python servingbench is installed in.
It runs only the network of the served-model folder beside it (served_model.py: TorchScript by
default, eager or onnxruntime as `server.runtime` says; BART's generate() loop eager), in both
pipelines: network_only's client pre- and postprocesses (the study's Triton set-up), end_to_end's
ensemble has triton_processing_model.py do it around this model. The tensor names come from the
model's config.pbtxt, which Triton hands over.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        # The stub's embedded interpreter ignores PYTHONPATH, where a user's model module or plugin may be.
        for entry in reversed(os.environ.get("PYTHONPATH", "").split(os.pathsep)):
            if entry and entry not in sys.path:
                sys.path.insert(0, entry)
        from servingbench.adapters.served_model import load_served_model

        # a KIND_GPU instance runs on the GPU Triton gives it; tensors then stay there (DLPack both ways)
        gpu = args["model_instance_kind"] == "GPU"
        self.loaded = load_served_model(Path(args["model_repository"]) / args["model_version"],
                                        f"cuda:{args['model_instance_device_id']}" if gpu else None)
        config = json.loads(args["model_config"])
        self.input_name, self.output_name = config["input"][0]["name"], config["output"][0]["name"]

    def execute(self, requests):
        """One response per request (one input each); with dynamic batching, equal shapes run together.

        Tensors cross the stub boundary through DLPack, not numpy: the stub's numpy path silently
        returns zeros under numpy 2 (seen with Triton 2.51's python backend).
        """
        import torch
        from torch.utils.dlpack import from_dlpack, to_dlpack

        inputs = [from_dlpack(pb_utils.get_input_tensor_by_name(r, self.input_name).to_dlpack()) for r in requests]
        with torch.inference_mode():
            if len(inputs) > 1 and self.loaded.stacks_inputs and all(x.shape == inputs[0].shape for x in inputs):
                merged = self.loaded.run_network(torch.cat(inputs))
                outputs = [merged[i:i + 1] for i in range(len(inputs))]
            else:
                outputs = [self.loaded.run_network(x) for x in inputs]
        return [pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor.from_dlpack(self.output_name, to_dlpack(out.contiguous()))]) for out in outputs]
