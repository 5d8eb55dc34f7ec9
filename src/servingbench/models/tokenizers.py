"""Tokenizers built offline, identical in behaviour to the hub models' ones (not in ids, for BART)."""
from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from transformers import BartTokenizer, Wav2Vec2CTCTokenizer

from .assets import ensure_assets

# facebook/wav2vec2-base-960h's characters: CTC blank (= <pad>), specials, word delimiter, letters.
CTC_VOCAB = ("<pad>", "<s>", "</s>", "<unk>", "|", "E", "T", "A", "O", "N", "I", "H", "S", "R", "D", "L", "U", "M",
             "W", "C", "F", "G", "Y", "P", "B", "V", "K", "'", "X", "J", "Q", "Z")
BART_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
BART_MAX_LENGTH = 1024  # BART's position embeddings


def ctc_tokenizer() -> Wav2Vec2CTCTokenizer:
    with tempfile.TemporaryDirectory(prefix="servingbench-ctc-") as scratch:  # the class only reads files
        vocab_file = Path(scratch, "vocab.json")
        vocab_file.write_text(json.dumps({token: i for i, token in enumerate(CTC_VOCAB)}), encoding="utf-8")
        return Wav2Vec2CTCTokenizer(str(vocab_file), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|")


def bart_tokenizer(progress: Callable[[str], object] = print) -> BartTokenizer:
    """GPT-2 byte-level BPE with BART's special tokens: <s>=0 <pad>=1 </s>=2 <unk>=3, GPT-2 ids + 4, <mask> last.

    facebook/bart-* number the same tokens in fairseq's frequency order instead; for randomly
    initialised weights only the tokenisation (and the sequence lengths it yields) matters.
    """
    assets = ensure_assets(progress)
    gpt2_vocab: dict[str, int] = json.loads(assets["gpt2-vocab.json"].read_text(encoding="utf-8"))
    merge_lines = assets["gpt2-merges.txt"].read_text(encoding="utf-8").splitlines()[1:]  # skip "#version"
    vocab = {token: i for i, token in enumerate(BART_SPECIALS)}
    vocab.update((token, rank + len(BART_SPECIALS)) for token, rank in gpt2_vocab.items())
    vocab["<mask>"] = len(vocab)
    # transformers 5: pass the vocab and merges themselves; vocab_file=/merges_file= are silently ignored.
    return BartTokenizer(vocab=vocab, merges=[tuple(line.split(" ")) for line in merge_lines],
                         model_max_length=BART_MAX_LENGTH)
