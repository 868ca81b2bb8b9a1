"""Greedy Whisper decoding in PyTorch eager: the yardstick every exported variant is held to.

Runs the Hugging Face model itself (not our export wrappers), with the same prompt and suppression
rules as the runtime, on Whisper's standard 30-s window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from casavox.runtime.asr.mel import log_mel


@dataclass
class ReferenceResult:
    tokens: list[int]
    step_logits: list[np.ndarray]  # raw logits before suppression, one per decoded position


@torch.no_grad()
def torch_greedy(
    model,
    audio: np.ndarray,
    filters: np.ndarray,
    prompt: list[int],
    eot: int,
    suppress: list[int],
    begin_suppress: list[int],
    max_tokens: int = 224,
    n_frames: int = 3000,
) -> ReferenceResult:
    param = next(model.parameters())  # runs wherever the model is (CPU reference, or CUDA as a peer)
    mel = torch.from_numpy(log_mel(audio, filters, n_frames))[None].to(param.device, param.dtype)
    encoded = model.model.encoder(mel).last_hidden_state
    ids = torch.tensor([prompt], device=param.device)
    past = None
    tokens: list[int] = []
    step_logits: list[np.ndarray] = []
    for i in range(max_tokens):
        out = model(encoder_outputs=(encoded,), decoder_input_ids=ids, cache=past, use_cache=True)
        past = out.cache
        logits = out.logits[0, -1].float().cpu().numpy().copy()
        step_logits.append(logits.copy())
        logits[suppress] = -np.inf
        if i == 0:
            logits[begin_suppress] = -np.inf
        token = int(np.argmax(logits))
        if token == eot:
            break
        tokens.append(token)
        ids = torch.tensor([[token]], device=param.device)
    return ReferenceResult(tokens, step_logits)
