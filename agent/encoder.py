"""The pretrained sentence encoder (all-MiniLM-L6-v2, tools/keywords/embeddings.py) with some of its top layers
fine-tuned: what the intent router (agent/router.py) and the input guardrail's intent screen
(agent/guardrails/intent.py) read messages with. Each ships only the layers it changed, as fp16 safetensors beside
its head; the bottom layers are the package's own weights.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np


class TunedEncoder:
    """all-MiniLM-L6-v2 with its top layers replaced by fine-tuned ones: mean-pooled, unit-length sentence
    vectors as sentence-transformers makes them. The bottom layers are the package's own weights, so the model
    dir ships only the layers that changed."""

    MAX_TOKENS = 64

    def __init__(self, model: Any, tokenizer: Any, max_tokens: int | None = None) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.max_tokens = max_tokens or self.MAX_TOKENS
        self._lock = threading.Lock()

    @classmethod
    def base(cls, max_tokens: int | None = None) -> TunedEncoder:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        # lazy: pulls in transformers at import
        from transformers import AutoModel, AutoTokenizer

        # lazy: pulls in pydantic_settings at import
        from tools.keywords.embeddings import model_path

        path = model_path()
        return cls(
            AutoModel.from_pretrained(path, local_files_only=True).eval(),
            AutoTokenizer.from_pretrained(path, local_files_only=True),
            max_tokens,
        )

    @classmethod
    def load(cls, path: Path, max_tokens: int | None = None) -> TunedEncoder:
        # lazy: pulls in safetensors at import
        from safetensors.torch import load_file

        encoder = cls.base(max_tokens)
        tuned = load_file(str(path))
        missing = set(tuned) - set(encoder.model.state_dict())
        if missing:
            raise ValueError(f"{path} holds weights the encoder does not have: {sorted(missing)[:3]}")
        encoder.model.load_state_dict(tuned, strict=False)
        return encoder

    def tokens(self, texts: list[str]) -> Any:
        return self.tokenizer(
            [" ".join(t.split()) for t in texts],
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        )

    def forward(self, texts: list[str]) -> Any:
        """[len(texts), 384] unit vectors, differentiable (training calls it under autograd)."""
        batch = self.tokens(texts)
        return pool(self.model(**batch).last_hidden_state, batch["attention_mask"])

    def encode(self, texts: list[str]) -> np.ndarray:
        # lazy: pulls in torch at import
        import torch

        with self._lock, torch.inference_mode():
            return np.asarray(self.forward(texts).float().numpy(), dtype=np.float32)

    def hidden_below(self, texts: list[str], layer: int) -> list[Any]:
        """Each text's token states as they enter encoder layer `layer` ([tokens, 384], no padding): what a
        fine-tuning of the layers from `layer` up reads, computed once (those below stay frozen)."""
        # lazy: pulls in torch at import
        import torch

        batch = self.tokens(texts)
        with self._lock, torch.no_grad():
            states = self.model(**batch, output_hidden_states=True).hidden_states[layer]
        return [s[: int(n)].clone() for s, n in zip(states, batch["attention_mask"].sum(1), strict=True)]

    def forward_from(self, hidden: list[Any], layer: int) -> Any:
        """[len(hidden), 384] unit vectors from token states entering layer `layer` (hidden_below's), through the
        layers above it; differentiable in those layers."""
        # lazy: pulls in torch at import
        import torch

        mask = torch.nn.utils.rnn.pad_sequence(
            [torch.ones(len(h), dtype=torch.long) for h in hidden], batch_first=True
        )
        states = torch.nn.utils.rnn.pad_sequence(hidden, batch_first=True)
        # the additive mask BertModel builds from attention_mask (checked equal to the whole model's output)
        additive = (1.0 - mask[:, None, None, :].to(states.dtype)) * torch.finfo(states.dtype).min
        for block in self.model.encoder.layer[layer:]:
            out = block(states, attention_mask=additive)
            states = out[0] if isinstance(out, tuple) else out
        return pool(states, mask)

    def tuned_weights(self, layers: range) -> dict[str, Any]:
        """The weights of encoder layers `layers`, fp16 (half the size on disk; read back as fp32 they encode the
        same), for the safetensors file beside a head."""
        prefixes = tuple(f"encoder.layer.{i}." for i in layers)
        return {
            k: v.detach().half().contiguous()
            for k, v in self.model.state_dict().items()
            if k.startswith(prefixes)
        }


def average_weights(members: list[dict[str, Any]], weights: list[float] | None = None) -> dict[str, Any]:
    """The weight-by-weight mean (fp32; uniform, or by `weights`, which add up to 1) of fine-tunings of the same layers
    from one start: a "model soup" (Wortsman et al. 2022). Fine-tunings from one start stay in one basin, so the mean
    is a model of its own that reads like the members' ensemble at one member's cost."""
    # lazy: pulls in torch at import
    import torch

    share = torch.tensor(
        weights if weights is not None else [1 / len(members)] * len(members), dtype=torch.float32
    )
    if set(members[0]) != set().union(*members) or abs(float(share.sum()) - 1) > 1e-6:
        raise ValueError(
            "average_weights: the members must hold the same weights, and the shares add up to 1"
        )
    return {
        k: torch.tensordot(share, torch.stack([m[k].float() for m in members]), dims=1) for k in members[0]
    }


def pool(hidden: Any, mask: Any) -> Any:
    """Mean of the token states over the real tokens, unit length (sentence-transformers' pooling)."""
    # lazy: pulls in torch at import
    import torch

    weights = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)
