"""The fine-tuning recipe's knobs and their defaults (torch-free, so the CLI can show them).

The defaults are what produced the committed adapter (``export/llm/adapter/recipe.json``): 800 steps
of 8 examples over 6,400 generated examples (one pass), rank-16 LoRA, cosine learning rate from 1e-3.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FinetuneConfig:
    steps: int = 800
    batch_size: int = 8
    lr: float = 1e-3
    warmup: int = 30
    rank: int = 16
    alpha: int = 32
    seed: int = 1234
    train_examples: int = 6400
    eval_examples: int = 120
    threads: int = 0  # 0: all cores
    bf16: bool = True
    checkpoint_every: int = 200  # steps between adapters written for a training curve (with a checkpoint dir)
    stop_at: int = 0  # end after this many steps of the ``steps`` schedule (0: all of them)
