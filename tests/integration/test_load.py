"""load_model on local directories and its offline errors."""

import pytest
import torch
from tiny import tiny_model

import steerscope as ss
from steerscope.errors import ArchitectureError, ModelNotFoundError


def test_load_local_directory_round_trip(tmp_path):
    m = tiny_model("qwen2")
    m.hf.save_pretrained(tmp_path)
    m.tokenizer.save_pretrained(tmp_path)
    loaded = ss.load_model(str(tmp_path), device="cpu")
    assert (loaded.n_layers, loaded.d_model, loaded.model_type) == (3, 32, "qwen2")
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        torch.testing.assert_close(loaded.hf(input_ids=ids).logits, m.hf(input_ids=ids).logits)


def test_missing_models_fail_with_instructions(tmp_path):
    with pytest.raises(ModelNotFoundError, match="offline"):
        ss.load_model("no-such-org/no-such-model-xyz")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        ss.load_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        ss.load_model(str(tmp_path / "missing-dir") + "/")


def test_unknown_architecture_falls_back_or_names_the_override():
    from torch import nn

    from steerscope.models.architectures import resolve_architecture

    class Blocks(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.config = type("C", (), {"num_hidden_layers": n})()
            self.decoder = nn.ModuleList([nn.ModuleDict({"attention": nn.Linear(2, 2), "mlp": nn.Linear(2, 2)})
                                          for _ in range(n)])

    spec = resolve_architecture(Blocks(3), "mystery")
    assert spec.layers == "decoder" and spec.attn == "attention" and spec.mlp == "mlp"
    broken = Blocks(3)
    broken.config.num_hidden_layers = 5
    with pytest.raises(ArchitectureError, match="ARCHITECTURES"):
        resolve_architecture(broken, "mystery")
