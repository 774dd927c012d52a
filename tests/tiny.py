"""Tiny random models (hidden 32, 3 layers) of every architecture steerscope supports, with an in-memory tokenizer."""

from __future__ import annotations

import functools
from contextlib import contextmanager

import torch

ARCHS = ["llama", "qwen2", "qwen3", "gemma2", "gemma3_text", "gpt2", "gpt_neox", "phi3"]
CHARS = list("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-:;\n")
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]


@functools.cache
def tiny_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + CHARS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    return tok


def tiny_config(arch: str, n_layers: int = 3):
    from transformers import AutoConfig

    vocab = len(SPECIALS) + len(CHARS)
    common = dict(vocab_size=vocab, pad_token_id=0, bos_token_id=2, eos_token_id=3, tie_word_embeddings=False)
    if arch == "gpt2":
        return AutoConfig.for_model("gpt2", n_embd=32, n_layer=n_layers, n_head=4, n_positions=256, **common)
    if arch == "gpt_neox":
        return AutoConfig.for_model(
            "gpt_neox", hidden_size=32, num_hidden_layers=n_layers, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=256, **common,
        )
    extra = {}
    if arch in ("gemma2", "gemma3_text", "qwen3"):
        extra["head_dim"] = 8
    if arch == "gemma3_text":
        extra.update(sliding_window=4, layer_types=(["sliding_attention", "full_attention"] * n_layers)[:n_layers])
    if arch == "gemma2":
        extra.update(sliding_window=4)
    return AutoConfig.for_model(
        arch, hidden_size=32, num_hidden_layers=n_layers, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, max_position_embeddings=256, **extra, **common,
    )


@functools.cache
def _tiny_hf(arch: str, n_layers: int, seed: int):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = tiny_config(arch, n_layers)
    config._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return model


def tiny_model(arch: str = "llama", n_layers: int = 3, seed: int = 0):
    """A SteerableModel around a cached tiny random HF model (do not mutate its weights in tests)."""
    from steerscope.models.load import wrap_model

    return wrap_model(_tiny_hf(arch, n_layers, seed), tiny_tokenizer(), name=f"tiny-{arch}")


@contextmanager
def recorded_around_steering(point):
    """Record block L's output before and after the steering hook at every forward call (registered after
    ``steer``: prepend=True runs first, prepend=False runs last). Version-robust: no ``output_hidden_states``."""
    before, after = [], []

    def grab(store):
        return lambda mod, args, out: store.append((out[0] if isinstance(out, tuple) else out).clone())

    handles = [point.module.register_forward_hook(grab(before), prepend=True),
               point.module.register_forward_hook(grab(after))]
    try:
        yield before, after
    finally:
        for h in handles:
            h.remove()
