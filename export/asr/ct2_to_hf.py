"""Recover a Hugging Face ``WhisperForConditionalGeneration`` from a CTranslate2 Whisper model.

This inverts CTranslate2's own Whisper converter (``ctranslate2.converters.transformers``,
``WhisperLoader``): it fused self-attention q/k/v into ``linear_0`` (HF's k_proj has no bias, so
CTranslate2 stored zeros there), fused cross-attention k/v into ``linear_1``, renamed layer norms to
gamma/beta and tied the output projection to the token embedding. We split and rename back.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from casavox.export.asr.ct2_reader import Ct2FormatError, Ct2Model

_NORM = {"gamma": "weight", "beta": "bias"}


def _linear(sd: dict, hf: str, m: Ct2Model, ct2: str, bias: bool = True) -> None:
    sd[f"{hf}.weight"] = m.get(f"{ct2}/weight")
    if bias:
        sd[f"{hf}.bias"] = m.get(f"{ct2}/bias")


def _norm(sd: dict, hf: str, m: Ct2Model, ct2: str) -> None:
    for ct2_name, hf_name in _NORM.items():
        sd[f"{hf}.{hf_name}"] = m.get(f"{ct2}/{ct2_name}")


def _split_fused(sd: dict, hf_prefix: str, names: list[str], m: Ct2Model, ct2: str) -> None:
    """Split a fused projection (rows stacked in ``names`` order) into separate HF linears."""
    weight = np.split(m.get(f"{ct2}/weight"), len(names), axis=0)
    bias = np.split(m.get(f"{ct2}/bias"), len(names), axis=0)
    for name, w, b in zip(names, weight, bias, strict=True):
        sd[f"{hf_prefix}.{name}.weight"] = w
        if name != "k_proj":  # HF Whisper's k_proj has no bias; CTranslate2 padded it with zeros
            sd[f"{hf_prefix}.{name}.bias"] = b


def whisper_dims(m: Ct2Model) -> dict:
    """The architecture numbers a WhisperConfig needs, read off the tensor shapes."""
    vocab, d_model = m.get("decoder/embeddings/weight").shape
    n_enc = len({k.split("/")[1] for k in m.variables if re.match(r"encoder/layer_\d+/", k)})
    n_dec = len({k.split("/")[1] for k in m.variables if re.match(r"decoder/layer_\d+/", k)})
    return {
        "vocab_size": int(vocab),
        "d_model": int(d_model),
        "num_mel_bins": int(m.get("encoder/conv1/weight").shape[1]),
        "encoder_layers": n_enc,
        "decoder_layers": n_dec,
        "encoder_attention_heads": int(m.get("encoder/num_heads")),
        "decoder_attention_heads": int(m.get("decoder/num_heads")),
        "encoder_ffn_dim": int(m.get("encoder/layer_0/ffn/linear_0/weight").shape[0]),
        "decoder_ffn_dim": int(m.get("decoder/layer_0/ffn/linear_0/weight").shape[0]),
        "max_source_positions": int(m.get("encoder/position_encodings/encodings").shape[0]),
        "max_target_positions": int(m.get("decoder/position_encodings/encodings").shape[0]),
    }


def ct2_state_dict(m: Ct2Model) -> dict[str, np.ndarray]:
    """Map every CTranslate2 Whisper variable onto its Hugging Face parameter name."""
    if m.spec_name != "WhisperSpec":
        raise Ct2FormatError(f"not a Whisper model: spec {m.spec_name}")
    dims = whisper_dims(m)
    sd: dict[str, np.ndarray] = {}
    enc, dec = "model.encoder", "model.decoder"
    _linear(sd, f"{enc}.conv1", m, "encoder/conv1")
    _linear(sd, f"{enc}.conv2", m, "encoder/conv2")
    sd[f"{enc}.embed_positions.weight"] = m.get("encoder/position_encodings/encodings")
    _norm(sd, f"{enc}.layer_norm", m, "encoder/layer_norm")
    for i in range(dims["encoder_layers"]):
        hf, ct = f"{enc}.layers.{i}", f"encoder/layer_{i}"
        _split_fused(
            sd, f"{hf}.self_attn", ["q_proj", "k_proj", "v_proj"], m, f"{ct}/self_attention/linear_0"
        )
        _linear(sd, f"{hf}.self_attn.out_proj", m, f"{ct}/self_attention/linear_1")
        _norm(sd, f"{hf}.self_attn_layer_norm", m, f"{ct}/self_attention/layer_norm")
        _linear(sd, f"{hf}.fc1", m, f"{ct}/ffn/linear_0")
        _linear(sd, f"{hf}.fc2", m, f"{ct}/ffn/linear_1")
        _norm(sd, f"{hf}.final_layer_norm", m, f"{ct}/ffn/layer_norm")
    sd[f"{dec}.embed_tokens.weight"] = m.get("decoder/embeddings/weight")
    sd[f"{dec}.embed_positions.weight"] = m.get("decoder/position_encodings/encodings")
    _norm(sd, f"{dec}.layer_norm", m, "decoder/layer_norm")
    for i in range(dims["decoder_layers"]):
        hf, ct = f"{dec}.layers.{i}", f"decoder/layer_{i}"
        _split_fused(
            sd, f"{hf}.self_attn", ["q_proj", "k_proj", "v_proj"], m, f"{ct}/self_attention/linear_0"
        )
        _linear(sd, f"{hf}.self_attn.out_proj", m, f"{ct}/self_attention/linear_1")
        _norm(sd, f"{hf}.self_attn_layer_norm", m, f"{ct}/self_attention/layer_norm")
        _linear(sd, f"{hf}.encoder_attn.q_proj", m, f"{ct}/attention/linear_0")
        _split_fused(sd, f"{hf}.encoder_attn", ["k_proj", "v_proj"], m, f"{ct}/attention/linear_1")
        _linear(sd, f"{hf}.encoder_attn.out_proj", m, f"{ct}/attention/linear_2")
        _norm(sd, f"{hf}.encoder_attn_layer_norm", m, f"{ct}/attention/layer_norm")
        _linear(sd, f"{hf}.fc1", m, f"{ct}/ffn/linear_0")
        _linear(sd, f"{hf}.fc2", m, f"{ct}/ffn/linear_1")
        _norm(sd, f"{hf}.final_layer_norm", m, f"{ct}/ffn/layer_norm")
    sd["proj_out.weight"] = m.get("decoder/projection/weight")  # tied to the embedding
    return sd


def whisper_from_ct2(m: Ct2Model, special: dict):
    """Build the HF model (float32, eval mode) from CTranslate2 variables.

    ``special`` carries the token ids HF's config needs (bos/eos/decoder start), which CTranslate2
    keeps in the tokenizer rather than the weights.
    """
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    dims = whisper_dims(m)
    config = WhisperConfig(
        **dims,
        bos_token_id=special["eot"],
        eos_token_id=special["eot"],
        pad_token_id=special["eot"],
        decoder_start_token_id=special["sot"],
        tie_word_embeddings=True,
    )
    model = WhisperForConditionalGeneration(config)
    state = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in ct2_state_dict(m).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    # HF registers no other parameters for Whisper; anything missing would be left random.
    missing = [k for k in missing if k != "proj_out.weight"]
    if missing or unexpected:
        raise ValueError(f"CTranslate2 -> HF mapping incomplete: missing={missing} unexpected={unexpected}")
    return model.eval()
