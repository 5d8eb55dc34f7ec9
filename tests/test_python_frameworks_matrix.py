"""The full matrix (slow: `pytest -m slow`): every Python framework serves every model of the zoo, tiny."""
import json

import pytest

from conftest import processes_mentioning, run_cli
from servingbench.adapters import get_adapter
from servingbench.config import load_study

FRAMEWORKS = ["rayserve", "bentoml", "litserve", "mlserver", "kserve", "mlflow", "fastapi"]
MODELS = ["resnet50", "efficientnet-lite0", "wav2vec2", "wav2vec2-truncated", "bart-large-cnn"]


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_model_is_served_correctly(framework, tmp_path):
    available = get_adapter(framework, load_study("smoke")).availability()
    if not available.ok:
        pytest.skip(available.reason)
    out = tmp_path / "results"
    done = run_cli("run", "smoke", "--frameworks", framework, "--users", "2", "--repetitions", "1",
                   "--duration", "2", "--warmup", "0.5", "--out", str(out), timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    cells = json.loads((out / "summary.json").read_text())["cells"]
    assert sorted(c["model"] for c in cells) == sorted(MODELS)
    for cell in cells:
        assert cell["status"] == "ok" and cell["correct"]["ok"] is True, cell
        assert cell["failed"] == 0
    assert processes_mentioning(str(out)) == []
