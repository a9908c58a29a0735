"""A small model dir for backend tests: the training engineer's trained model when there is one, else a
freshly built tiny Qwen2 (random weights) made with their own tokenizer and model builders."""

from __future__ import annotations

from pathlib import Path

from agent.configuration import default_model_dir


def model_dir_for_tests(tmp: Path) -> Path:
    if (found := default_model_dir()) is not None:
        return found
    from training.config import ModelConfig
    from training.model import build_model, save_model_dir
    from training.tokenizer import project_corpus, train_tokenizer

    texts = list(project_corpus())
    tokenizer = train_tokenizer(texts, vocab_size=2048)
    # head_dim 64: vLLM's CPU attention kernels reject small head sizes (16 fails).
    model = build_model(ModelConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=1,
                                    num_key_value_heads=1, max_position_embeddings=4096), tokenizer)
    out = tmp / "tiny-model"
    save_model_dir(model, tokenizer, out)
    return out
