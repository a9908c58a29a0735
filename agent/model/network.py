"""The embedded model: MiniLM (all-MiniLM-L6-v2, 6 BERT layers, 384-d) turned into a prefix language model.

One Transformer does both halves of a sequence-to-sequence model (UniLM's trick): the prompt's tokens see each
other both ways, as the pretrained encoder was trained to read; each output token sees the whole prompt and
the outputs before it. So the pretrained layers understand the seller's words *and* write the call and the
answer, the output can copy any prompt token by attention over one shared vocabulary, and the model is a plain
causal LM to every trainer: `forward(input_ids, attention_mask)` finds the prompt's end (its first [SEP]) and
builds the mask itself, which is what TRL's DPOTrainer needs.

It is a `transformers.PreTrainedModel` (save_pretrained / from_pretrained, registered with the Auto classes),
so the same loading code serves training, evaluation and a deployment. `from_minilm()` starts one from the
pretrained encoder: its weights are loaded name for name; the output head (tied to the word embeddings) and
the embeddings of the added special tokens start fresh.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutput

from agent.model.text import minilm_dir

Cache = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [B, heads, T, head_dim]


class AdguideConfig(PretrainedConfig):
    model_type = "adguide_prefix_lm"

    def __init__(
        self,
        vocab_size: int = 30533,
        hidden_size: int = 384,
        num_hidden_layers: int = 6,
        num_attention_heads: int = 12,
        intermediate_size: int = 1536,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        layer_norm_eps: float = 1e-12,
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        pad_token_id: int = 0,
        sep_token_id: int = 102,
        cls_token_id: int = 101,
        **kwargs: Any,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.layer_norm_eps = layer_norm_eps
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.sep_token_id = sep_token_id
        self.cls_token_id = cls_token_id
        kwargs.setdefault("tie_word_embeddings", True)
        super().__init__(**kwargs)
        self.pad_token_id = pad_token_id
        self.eos_token_id = sep_token_id


# --- layers, named as transformers' BertModel names them (so MiniLM's weights load name for name) ---------------


class _Embeddings(nn.Module):
    def __init__(self, c: AdguideConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, ids: torch.Tensor, positions: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        x = (
            self.word_embeddings(ids)
            + self.position_embeddings(positions)
            + self.token_type_embeddings(types)
        )
        return self.dropout(self.LayerNorm(x))


class _SelfAttention(nn.Module):
    def __init__(self, c: AdguideConfig) -> None:
        super().__init__()
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)


class _Dense(nn.Module):
    def __init__(self, d_in: int, d_out: int, eps: float, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.LayerNorm = nn.LayerNorm(d_out, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class _Attention(nn.Module):
    def __init__(self, c: AdguideConfig) -> None:
        super().__init__()
        self.self = _SelfAttention(c)
        self.output = _Dense(c.hidden_size, c.hidden_size, c.layer_norm_eps, c.hidden_dropout_prob)


class _Intermediate(nn.Module):
    def __init__(self, c: AdguideConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)


class _Layer(nn.Module):
    def __init__(self, c: AdguideConfig) -> None:
        super().__init__()
        self.heads = c.num_attention_heads
        self.head_dim = c.hidden_size // c.num_attention_heads
        self.attn_dropout = c.attention_probs_dropout_prob
        self.attention = _Attention(c)
        self.intermediate = _Intermediate(c)
        self.output = _Dense(c.intermediate_size, c.hidden_size, c.layer_norm_eps, c.hidden_dropout_prob)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        sa = self.attention.self
        q, k, v = self._split(sa.query(x)), self._split(sa.key(x)), self._split(sa.value(x))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        ctx = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.attn_dropout if self.training else 0.0
        )
        ctx = ctx.transpose(1, 2).reshape(x.shape)
        h = self.attention.output(ctx, x)
        out = self.output(F.gelu(self.intermediate.dense(h)), h)
        return out, (k, v)


class _Encoder(nn.Module):
    def __init__(self, c: AdguideConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))


class _Transform(nn.Module):
    """BERT's prediction transform (dense, GELU, LayerNorm): the backbone's last step before the output layer."""

    def __init__(self, c: AdguideConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(F.gelu(self.dense(h)))


class _Backbone(nn.Module):
    """Embeddings, the Transformer with the prefix-LM mask, the transform: hidden states the output layer reads
    (what trainers call the base model; TRL's fused LM head runs it, then the output layer, at scored positions)."""

    def __init__(self, c: AdguideConfig) -> None:
        super().__init__()
        self.config = c
        self.embeddings = _Embeddings(c)
        self.encoder = _Encoder(c)
        self.transform = _Transform(c)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any
    ) -> BaseModelOutput:
        mask, types = prefix_mask(input_ids, attention_mask, self.config.sep_token_id)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None].expand_as(input_ids)
        x = self.embeddings(input_ids, positions, types)
        for layer in self.encoder.layer:
            x, _ = layer(x, mask)
        return BaseModelOutput(last_hidden_state=self.transform(x))


def prefix_mask(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None, sep_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(boolean attention mask [B, 1, T, T], token types [B, T]). The prompt runs to its first [SEP]: prompt
    tokens see the prompt; output tokens see the prompt and the outputs up to themselves; padding is seen by
    nobody (and sees itself, so no row is empty)."""
    b, t = input_ids.shape
    device = input_ids.device
    is_sep = input_ids == sep_id
    has_sep = is_sep.any(dim=1)
    first_sep = torch.where(has_sep, is_sep.int().argmax(dim=1), torch.full((b,), t - 1, device=device))
    boundary = first_sep + 1  # tokens < boundary are the prompt
    pos = torch.arange(t, device=device)
    is_prompt = pos[None, :] < boundary[:, None]  # [B, T]
    causal = pos[None, :] <= pos[:, None]  # [T(i), T(j)]
    allowed = is_prompt[:, None, :] & is_prompt[:, :, None]  # prompt -> prompt
    allowed = allowed | (
        ~is_prompt[:, :, None] & (is_prompt[:, None, :] | causal[None])
    )  # output -> prompt + past
    if attention_mask is not None:
        keep = attention_mask.bool()
        allowed = allowed & keep[:, None, :]
        allowed = allowed | torch.eye(t, dtype=torch.bool, device=device)[None]
    return allowed[:, None], (~is_prompt).long()


MAX_SHARD_SIZE = "20MB"  # the repository keeps files under 25 MB


class AdguideForPrefixLM(PreTrainedModel):
    config_class = AdguideConfig
    base_model_prefix = "model"
    _tied_weights_keys = {"lm_head.weight": "model.embeddings.word_embeddings.weight"}
    _supports_sdpa = True

    def save_pretrained(  # type: ignore[override]
        self,
        save_directory: Any,
        *,
        max_shard_size: int | str = MAX_SHARD_SIZE,
        **kwargs: Any,
    ) -> Any:
        """Weights in safetensors shards of at most MAX_SHARD_SIZE (with transformers' index file): a model dir
        the repository ships has no file over its size limit; from_pretrained reads shards as it reads one file."""
        return super().save_pretrained(save_directory, max_shard_size=max_shard_size, **kwargs)

    def __init__(self, config: AdguideConfig) -> None:
        super().__init__(config)
        self.model = _Backbone(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=True)
        self.post_init()
        # trainers read it; decoding is agent/model/decode.py
        if getattr(self, "generation_config", None) is None:
            self.generation_config = GenerationConfig(
                eos_token_id=config.sep_token_id, pad_token_id=config.pad_token_id
            )

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(0.0, 0.02)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.data.normal_(0.0, 0.02)
        elif isinstance(module, nn.LayerNorm):
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.embeddings.word_embeddings = value  # type: ignore[assignment]

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value  # type: ignore[assignment]

    @property
    def layers(self) -> nn.ModuleList:
        return self.model.encoder.layer

    # --- running --------------------------------------------------------------------------------------------

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The Transformer's last layer (before the prediction transform): the pretrained encoder's output."""
        mask, types = prefix_mask(input_ids, attention_mask, self.config.sep_token_id)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None].expand_as(input_ids)
        x = self.model.embeddings(input_ids, positions, types)
        for layer in self.model.encoder.layer:
            x, _ = layer(x, mask)
        return x

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> CausalLMOutput:
        """Logits of the next token at every position; with `labels` (-100 where not scored) the loss is computed
        on the scored positions only, and only their logits are materialized (the prompt is most of a sequence)."""
        h = self.model(input_ids, attention_mask).last_hidden_state
        if labels is None:
            return CausalLMOutput(logits=self.lm_head(h))
        target = labels[:, 1:].reshape(-1)
        where = (target != -100).nonzero().squeeze(1)
        # the scored positions, padded to a multiple of 128 with ignored ones: a few distinct matrix shapes keep
        # the CPU kernels' caches from growing with every batch
        pad = (-where.numel()) % 128
        where = torch.cat([where, where.new_zeros(pad)])
        picked = target[where].clone()
        picked[picked.numel() - pad :] = -100
        logits = self.lm_head(h[:, :-1].reshape(-1, h.shape[-1])[where])
        loss = F.cross_entropy(logits.float(), picked, ignore_index=-100)
        return CausalLMOutput(loss=loss, logits=logits)

    @torch.inference_mode()
    def start(self, prompt_ids: torch.Tensor) -> tuple[torch.Tensor, Cache]:
        """Run a prompt (ending with [SEP]) once: the next-token logits and the cache of keys and values."""
        t = prompt_ids.shape[1]
        if t >= self.config.max_position_embeddings:
            raise ValueError(
                f"the prompt is {t} tokens; this model reads at most {self.config.max_position_embeddings}"
            )
        positions = torch.arange(t, device=prompt_ids.device)[None]
        x = self.model.embeddings(prompt_ids, positions, torch.zeros_like(prompt_ids))
        cache: Cache = []
        for layer in self.model.encoder.layer:
            x, kv = layer(x, None)  # the prompt sees itself both ways
            cache.append(kv)
        return self.lm_head(self.model.transform(x[:, -1])), cache

    @torch.inference_mode()
    def extend(self, ids: torch.Tensor, cache: Cache) -> tuple[torch.Tensor, Cache]:
        """Feed output tokens (one or several at once, e.g. tokens a grammar forces) after the cache: the logits
        after the last of them, and the grown cache. Each new token sees the cache and the new ones up to it."""
        past = cache[0][0].shape[2]
        n = ids.shape[1]
        positions = torch.arange(past, past + n, device=ids.device)[None]
        if past + n > self.config.max_position_embeddings:
            raise ValueError(
                f"the output would pass the model's {self.config.max_position_embeddings} positions"
            )
        x = self.model.embeddings(ids, positions, torch.ones_like(ids))
        mask = None
        if n > 1:
            mask = torch.ones(n, past + n, dtype=torch.bool, device=ids.device)
            mask[:, past:] = torch.tril(mask[:, past:])
        out: Cache = []
        for layer, kv in zip(self.model.encoder.layer, cache, strict=True):
            x, new = layer(x, mask, kv)
            out.append(new)
        return self.lm_head(self.model.transform(x[:, -1])), out

    # --- starting from the pretrained encoder ------------------------------------------------------------------

    @classmethod
    def from_minilm(cls, vocab_size: int, **overrides: Any) -> AdguideForPrefixLM:
        """A model whose Transformer is all-MiniLM-L6-v2 (hash-checked) and whose vocabulary has `vocab_size`
        entries (MiniLM's plus the added special tokens, which start at the mean embedding)."""
        # lazy: safetensors is heavy and needed only here
        from safetensors.torch import load_file

        state = load_file(str(minilm_dir() / "model.safetensors"))
        state = {
            "model." + k.removeprefix("bert."): v
            for k, v in state.items()
            if not k.startswith(("pooler", "bert.pooler")) and not k.endswith("position_ids")
        }
        model = cls(AdguideConfig(vocab_size=vocab_size, **overrides))
        words = state["model.embeddings.word_embeddings.weight"]
        grown = model.model.embeddings.word_embeddings.weight.data
        grown[: words.shape[0]] = words
        grown[words.shape[0] :] = words.mean(dim=0) + 0.02 * torch.randn(
            grown.shape[0] - words.shape[0], words.shape[1]
        )
        state["model.embeddings.word_embeddings.weight"] = grown
        missing, unexpected = model.load_state_dict(state, strict=False)
        unknown = [k for k in missing if not k.startswith(("lm_head.", "model.transform."))]
        if unknown or unexpected:
            raise RuntimeError(f"MiniLM weights did not fit: missing {unknown}, unexpected {unexpected}")
        with torch.no_grad():  # start the transform as (nearly) the identity on the tied embeddings
            model.model.transform.dense.weight.copy_(torch.eye(model.config.hidden_size) * math.sqrt(2.0))
            model.model.transform.dense.bias.zero_()
        model.tie_weights()
        return model


AutoConfig.register(AdguideConfig.model_type, AdguideConfig)
AutoModelForCausalLM.register(AdguideConfig, AdguideForPrefixLM)
