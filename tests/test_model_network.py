"""The prefix LM on MiniLM: the pretrained encoder's exact outputs on a prompt, the cache, the mask, saving."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from agent.model.network import AdguideForPrefixLM, prefix_mask
from agent.model.text import load_tokenizer, minilm_dir


@pytest.fixture(scope="module")
def model() -> AdguideForPrefixLM:
    return AdguideForPrefixLM.from_minilm(load_tokenizer().get_vocab_size()).eval()


def test_reading_a_prompt_is_exactly_the_pretrained_encoder(model: AdguideForPrefixLM) -> None:
    from transformers import BertModel

    tok = load_tokenizer()
    ids = torch.tensor(
        [tok.encode("what should i bid on my bamboo cutting board ?", add_special_tokens=False).ids]
    )
    reference = BertModel.from_pretrained(str(minilm_dir())).eval()
    with torch.no_grad():
        assert torch.allclose(model.hidden(ids), reference(ids).last_hidden_state, atol=1e-4)


def test_the_cache_gives_the_same_logits_as_a_full_pass(model: AdguideForPrefixLM) -> None:
    full = torch.tensor([[101, 2054, 2323, 1045, 7226, 102, 1996, 2190, 7226, 2003]])
    with torch.no_grad():
        logits = model(full).logits
        first, cache = model.start(full[:, :6])
        two, cache = model.extend(full[:, 6:8], cache)
        three, _ = model.extend(full[:, 8:9], cache)
    assert torch.allclose(logits[0, 5], first[0], atol=1e-4)
    assert torch.allclose(logits[0, 7], two[0], atol=1e-4)
    assert torch.allclose(logits[0, 8], three[0], atol=1e-4)


def test_prompt_tokens_never_see_the_output() -> None:
    ids = torch.tensor([[101, 7, 8, 102, 9, 10, 0]])
    mask, types = prefix_mask(ids, torch.tensor([[1, 1, 1, 1, 1, 1, 0]]), sep_id=102)
    m = mask[0, 0]
    assert m[1, 2] and m[2, 1]  # the prompt reads both ways
    assert not m[2, 4]  # ... but never the output
    assert m[4, 1] and m[5, 4] and not m[4, 5]  # outputs read the prompt and earlier outputs only
    assert not m[5, 6]  # nobody reads padding
    assert types.tolist() == [[0, 0, 0, 0, 1, 1, 1]]


def test_loss_is_on_output_positions_and_saving_round_trips(
    model: AdguideForPrefixLM, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[101, 2054, 2323, 102, 1996, 2190, 102]])
    labels = torch.tensor([[-100, -100, -100, -100, 1996, 2190, 102]])
    out = model(ids, labels=labels)
    assert out.loss is not None and torch.isfinite(out.loss)
    model.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(again, AdguideForPrefixLM)
    assert again.lm_head.weight.data_ptr() == again.model.embeddings.word_embeddings.weight.data_ptr()
    with torch.no_grad():
        assert torch.allclose(again(ids).logits, model(ids).logits, atol=1e-5)


def test_a_shipped_model_dir_has_no_file_over_25_mb_and_loads_as_before(
    model: AdguideForPrefixLM, tmp_path: Path
) -> None:
    """What `adguide train export` writes: fp16 safetensors shards, read back as fp32 by the backend."""
    from training.stages import _ship_weights_in_fp16

    ids = torch.tensor([[101, 2054, 2323, 102, 1996, 2190, 102]])
    model.save_pretrained(tmp_path)
    _ship_weights_in_fp16(tmp_path)
    assert not (tmp_path / "model.safetensors").exists()
    assert max(f.stat().st_size for f in tmp_path.iterdir()) < 25 * 10**6
    again = AdguideForPrefixLM.from_pretrained(str(tmp_path), dtype=torch.float32).eval()
    assert next(again.parameters()).dtype == torch.float32
    with torch.no_grad():
        assert torch.allclose(again(ids).logits, model(ids).logits, atol=0.05)
