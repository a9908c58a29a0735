"""The project's own byte-level BPE tokenizer and its hermes/Qwen2-style chat template.

Digits are split one per token (numbers are what the agent must copy exactly from tool results). The
hermes markers `<tool_call>`, `</tool_call>`, `<tool_response>`, `</tool_response>` are added as normal
added tokens, not special ones: decoding with `skip_special_tokens=True` must keep them, and vLLM's hermes
parser looks them up in the vocabulary. `<|im_start|>`, `<|im_end|>`, `<|endoftext|>` are special.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

CHAT_TEMPLATE_PATH = Path(__file__).with_name("chat_template.jinja")
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TOOL_TOKENS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"
REPO_ROOT = Path(__file__).resolve().parents[1]
QWEN2_SPLIT_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_CORPUS_DIRS = ("agent", "tools", "training", "evals", "server", "docs")
_CORPUS_SUFFIXES = {".py", ".md", ".json", ".jinja", ".yaml", ".toml", ".txt"}


class CorpusTooSmallError(ValueError):
    """The corpus cannot supply the vocabulary asked for."""


def chat_template() -> str:
    return CHAT_TEMPLATE_PATH.read_text()


def project_corpus(root: Path = REPO_ROOT, max_file_bytes: int = 200_000) -> Iterator[str]:
    """The project's own text: its docs and sources (varied English and code), skipping build outputs."""
    for name in ("README.md", "pyproject.toml"):
        if (root / name).is_file():
            yield (root / name).read_text(errors="replace")
    for top in _CORPUS_DIRS:
        base = root / top
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            parts = set(path.relative_to(root).parts)
            if (
                not path.is_file()
                or path.suffix not in _CORPUS_SUFFIXES
                or parts & {"models", "runs", "__pycache__"}
            ):
                continue
            if path.stat().st_size <= max_file_bytes:
                yield path.read_text(errors="replace")


# -> PreTrainedTokenizerFast
def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2):
    """Train byte-level BPE on `texts`; raise CorpusTooSmallError if the vocabulary falls short by > 10%."""
    # lazy: tokenizers is heavy and needed only here
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    # lazy: transformers is heavy and needed only here
    from transformers import PreTrainedTokenizerFast

    reserved = len(SPECIAL_TOKENS) + len(TOOL_TOKENS)
    bpe = Tokenizer(models.BPE())
    # Qwen2's own split pattern (it already isolates each digit): AutoTokenizer on a qwen2 dir, as vLLM uses,
    # swaps this pattern in, so using it here makes both loaders tokenize identically.
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(TOOL_TOKENS),
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=None,
        bos_token=None,
        model_max_length=131_072,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.add_tokens(TOOL_TOKENS)  # plain added tokens: kept by decode(skip_special_tokens=True)
    tokenizer.chat_template = chat_template()
    if len(tokenizer) < 0.9 * vocab_size:
        raise CorpusTooSmallError(
            f"the corpus supports only {len(tokenizer)} of the {vocab_size} tokens asked for "
            f"({reserved} reserved): add more varied text or lower tokenizer.vocab_size"
        )
    return tokenizer


def load_tokenizer(model_dir: Path):  # -> PreTrainedTokenizerFast
    """Load with PreTrainedTokenizerFast: AutoTokenizer on a qwen2 dir swaps in Qwen's own pre-tokenizer."""
    # lazy: transformers is heavy and needed only here
    from transformers import PreTrainedTokenizerFast

    if not (Path(model_dir) / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{model_dir} has no tokenizer.json: build it with `adguide train base`")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(model_dir))
    if not tokenizer.chat_template:
        raise ValueError(f"{model_dir}/tokenizer_config.json has no chat_template")
    return tokenizer


def save_tokenizer(tokenizer, out_dir: Path) -> None:
    # save_jinja_files=False keeps the template inside tokenizer_config.json (contract E).
    tokenizer.save_pretrained(str(out_dir), save_jinja_files=False)
