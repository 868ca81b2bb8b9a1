"""Whisper as two ONNX-friendly torch modules: the encoder and one decoder step with KV cache.

Why our own modules instead of optimum's exporter: optimum-onnx 0.1 pins transformers<4.58 (the
version knot in the README), and its *merged* decoder hides the layers inside ``If`` branches where
onnxruntime's dynamic int8 quantization silently does nothing. Two plain graphs are smaller,
quantize properly, and let the encoder run on a trimmed input (positional embeddings sliced to the
real length). The modules reuse the Hugging Face weights; the math is written out so it exports to
plain MatMul/Softmax with no framework-specific attention kernels.

Shapes: L decoder layers, H heads, D = d_model / H, T encoder frames (mel frames / 2), P past tokens.
  encoder: mel [1, n_mels, 2T] -> cross_k, cross_v [L, 1, H, T, D]
  decoder: tokens [1, n], self_k/self_v [L, 1, H, P, D], cross_k/cross_v
           -> logits [1, vocab] (last position), new_self_k/new_self_v [L, 1, H, P+n, D]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, T, H*D] -> [B, H, T, D]"""
    b, t, c = x.shape
    return x.view(b, t, heads, c // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, H, T, D] -> [B, T, H*D]"""
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """softmax(q k^T / sqrt(D) + mask) v, per head."""
    scores = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
    if mask is not None:
        scores = scores + mask
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def self_attention(attn: nn.Module, x: torch.Tensor, heads: int) -> torch.Tensor:
    q, k, v = (split_heads(proj(x), heads) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
    return attn.out_proj(merge_heads(attend(q, k, v)))


class WhisperEncoderGraph(nn.Module):
    """Log-mel -> cross-attention keys/values for every decoder layer (computed once per utterance)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.encoder = model.model.encoder
        self.decoder_layers = model.model.decoder.layers
        self.heads = model.config.encoder_attention_heads
        self.dec_heads = model.config.decoder_attention_heads

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.encoder
        x = F.gelu(enc.conv1(mel))
        x = F.gelu(enc.conv2(x)).transpose(1, 2)  # [1, T, C]
        x = x + enc.embed_positions.weight[: x.shape[1]]  # sliced: the encoder runs on the real length
        for layer in enc.layers:
            x = x + self_attention(layer.self_attn, layer.self_attn_layer_norm(x), self.heads)
            x = x + layer.fc2(F.gelu(layer.fc1(layer.final_layer_norm(x))))
        x = enc.layer_norm(x)
        ks = [split_heads(layer.encoder_attn.k_proj(x), self.dec_heads) for layer in self.decoder_layers]
        vs = [split_heads(layer.encoder_attn.v_proj(x), self.dec_heads) for layer in self.decoder_layers]
        return torch.stack(ks), torch.stack(vs)


class WhisperDecoderGraph(nn.Module):
    """One decoder call: new tokens + self-attention cache -> next-token logits + grown cache."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.decoder = model.model.decoder
        self.heads = model.config.decoder_attention_heads

    def forward(
        self,
        tokens: torch.Tensor,
        self_k: torch.Tensor,
        self_v: torch.Tensor,
        cross_k: torch.Tensor,
        cross_v: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dec = self.decoder
        past, n = self_k.shape[3], tokens.shape[1]
        positions = torch.arange(n, device=tokens.device) + past
        x = dec.embed_tokens(tokens) + dec.embed_positions.weight[positions]
        # Causal mask over [past + new] keys for the n new queries.
        key_pos = torch.arange(past + n, device=tokens.device)
        mask = (key_pos[None, :] > positions[:, None]).to(x.dtype) * torch.finfo(x.dtype).min
        new_k, new_v = [], []
        for i, layer in enumerate(dec.layers):
            h = layer.self_attn_layer_norm(x)
            attn = layer.self_attn
            q = split_heads(attn.q_proj(h), self.heads)
            k = torch.cat([self_k[i], split_heads(attn.k_proj(h), self.heads)], dim=2)
            v = torch.cat([self_v[i], split_heads(attn.v_proj(h), self.heads)], dim=2)
            new_k.append(k)
            new_v.append(v)
            x = x + attn.out_proj(merge_heads(attend(q, k, v, mask)))
            h = layer.encoder_attn_layer_norm(x)
            q = split_heads(layer.encoder_attn.q_proj(h), self.heads)
            x = x + layer.encoder_attn.out_proj(merge_heads(attend(q, cross_k[i], cross_v[i])))
            x = x + layer.fc2(F.gelu(layer.fc1(layer.final_layer_norm(x))))
        last = dec.layer_norm(x[:, -1])
        # Output projection tied to the token embedding; F.linear keeps one copy of the table (a Gemm
        # with transB), where matmul(., W.t()) would constant-fold a second, transposed copy.
        logits = F.linear(last, dec.embed_tokens.weight)
        return logits, torch.stack(new_k), torch.stack(new_v)
