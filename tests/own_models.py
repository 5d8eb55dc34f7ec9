"""Your own models as a new user brings them: a tiny transformers text classifier saved to a directory,
one small network as TorchScript and ONNX files with .npz inputs, and the example model plugin installed."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

PLUGIN = Path(__file__).resolve().parent.parent / "examples" / "model-plugin"
WORDS = ("the a birch canoe slid on smooth planks please call stella ask her to bring these things with from store "
         "serving framework turns trained model into web service that answers many requests at once").split()


def save_text_classifier(directory: Path) -> Path:
    """A BERT sentence classifier (random weights, 3 labels) with its WordPiece tokenizer, save_pretrained'd."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS)), "."]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), model_max_length=64)
    labels = {0: "negative", 1: "neutral", 2: "positive"}
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=3, id2label=labels,
                        label2id={v: k for k, v in labels.items()})
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def save_network_files(directory: Path) -> tuple[Path, Path, Path]:
    """(model.pt, model.onnx, inputs.npz): a small MLP traced and exported, and three inputs of shape (1, 8)."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval()
    example = torch.randn(1, 8)
    torchscript, onnx, inputs = directory / "model.pt", directory / "model.onnx", directory / "inputs.npz"
    torch.jit.trace(network, example).save(str(torchscript))
    torch.onnx.export(network, (example,), str(onnx), input_names=["features"], output_names=["scores"],
                      dynamic_axes={"features": {0: "batch"}, "scores": {0: "batch"}}, dynamo=False)
    rng = np.random.default_rng(0)
    np.savez(inputs, **{f"row{i}": rng.standard_normal((1, 8)).astype("float32") for i in range(3)})
    return torchscript, onnx, inputs


def install_plugin(target: Path) -> Path:
    """The example plugin pip-installed into `target` (put it on PYTHONPATH): its entry point registers it.
    Built from a copy: the build leaves build/ and *.egg-info beside the sources."""
    source = target.parent / "model-plugin-source"
    shutil.copytree(PLUGIN, source)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True, timeout=300)
    return target
