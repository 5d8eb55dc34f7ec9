"""What a framework is handed and what it answers (issue 18), named the same in studies, adapters and results.

end_to_end    the sample as a user has it (JPEG, WAV, text) in, the task's answer out: every step in the server
network_only  the network's input tensor in, its output tensor out; the client preprocesses and postprocesses
              (the study's Triton and TF Serving set-up)
Cells of different pipelines are measured and ranked apart.
"""
from __future__ import annotations

from typing import Literal, get_args

Pipeline = Literal["end_to_end", "network_only"]
PIPELINES: tuple[Pipeline, ...] = get_args(Pipeline)
DEFAULT_PIPELINE: Pipeline = "end_to_end"
PIPELINE_WORDS = {"end_to_end": "end to end", "network_only": "network only"}


def served_label(framework: str, pipeline: str) -> str:
    """A framework as tables and messages name it: network_only said, the default pipeline not."""
    return framework if pipeline == DEFAULT_PIPELINE else f"{framework} ({PIPELINE_WORDS[pipeline]})"


def served_id(name: str, pipeline: str) -> str:
    """A framework or model in file names (run folders, trial ids, tables): "triton", "triton.network_only", so that
    both pipelines' files are kept apart and the default one's keep their plain names."""
    return name if pipeline == DEFAULT_PIPELINE else f"{name}.{pipeline}"
