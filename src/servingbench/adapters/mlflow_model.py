"""The `mlflow` adapter's model as MLflow serves it: a pyfunc PythonModel around the served-model folder.

`python -m servingbench.adapters.mlflow_model SERVED_MODEL_DIR MLFLOW_MODEL_DIR` saves it with
`mlflow.pyfunc.save_model` (run by the adapter with the MLflow environment's python); the folder is
copied in as the artifact "served_model". `mlflow models serve` loads it in every uvicorn worker:
`load_context` loads the served model, `predict` answers a list of samples.

The type hints are the model's signature, as MLflow 3 infers it: `list[bytes]` makes the scoring
server take `{"inputs": [<base64>, ...]}` and hand `predict` the decoded bytes.
"""
from __future__ import annotations

import sys
from importlib.metadata import version
from typing import Any

import mlflow.pyfunc

from servingbench.adapters.served_model import load_served_model, predict_batch

ARTIFACT = "served_model"


class ServedModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.loaded = load_served_model(context.artifacts[ARTIFACT])

    def predict(self, context: mlflow.pyfunc.PythonModelContext, model_input: list[bytes]) -> list[dict[str, Any]]:
        return predict_batch(self.loaded, model_input)


def save(served_model_dir: str, mlflow_model_dir: str) -> None:
    # Requirements given, not inferred: inference would load the model once more in a subprocess,
    # and `--env-manager local` serves from this environment anyway.
    requirements = [f"{name}=={version(name)}" for name in ("mlflow", "torch", "transformers")]
    mlflow.pyfunc.save_model(mlflow_model_dir, python_model=ServedModel(), artifacts={ARTIFACT: served_model_dir},
                             pip_requirements=requirements)


if __name__ == "__main__":
    save(*sys.argv[1:])
