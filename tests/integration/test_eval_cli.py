"""`steerscope eval sweep`, `eval kl` and `eval linearity` end to end on a tiny model saved to disk."""

import copy
import json

import pytest
import torch
from tiny import tiny_model

import steerscope as ss
from steerscope.cli.main import main
from steerscope.io import read_json


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("evalcli")
    m = tiny_model("llama", seed=21)
    m.hf.save_pretrained(root / "model")
    m.tokenizer.save_pretrained(root / "model")
    g = torch.Generator().manual_seed(0)
    ss.SteeringVector({1: torch.randn(m.d_model, generator=g)}).save(root / "v.safetensors")
    ss.VectorSet.from_vectors([ss.SteeringVector({1: torch.randn(m.d_model, generator=g)}) for _ in range(3)]).save(
        root / "set.safetensors")
    pm = get_peft_model(copy.deepcopy(m.hf), LoraConfig(r=2, target_modules=["down_proj"], init_lora_weights=False))
    pm.save_pretrained(root / "adapter")
    (root / "prompts.txt").write_text("hello\nthe cat\nabc\ndogs\n")
    return root


def test_sweep_cli(saved, tmp_path, capsys):
    out = tmp_path / "sweep"
    code = main(["eval", "sweep", str(saved / "v.safetensors"), "--model", str(saved / "model"), "--no-chat",
                 "--prompts-file", str(saved / "prompts.txt"), "--scales", "-4:4:4", "--metrics", "count:a",
                 "--max-new-tokens", "6", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "coherence window" in text
    data = read_json(out / "sweep.json")
    assert [r["scale"] for r in data["rows"]] == [-4, 0, 4] and data["objective"] == "count:a"
    for name in ("sweep.csv", "sweep.png", "samples.jsonl"):
        assert (out / name).is_file()


def test_kl_cli_expands_sets(saved, tmp_path, capsys):
    code = main(["eval", "kl", str(saved / "set.safetensors"), str(saved / "v.safetensors"), "--model",
                 str(saved / "model"), "--no-chat", "--prompts", "hello", "abc", "--scale", "4",
                 "--out", str(tmp_path / "kl.json")])
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(rows) == 4 and all(r["kl"] > 0 for r in rows)
    assert rows[0]["vector"].endswith("set.safetensors:0")
    assert len(read_json(tmp_path / "kl.json")["rows"]) == 4


def test_linearity_cli(saved, tmp_path, capsys, monkeypatch):
    import numpy as np

    from steerscope.evaluate import embed

    # the MiniLM embedder is exercised by the real tests; here a cheap stand-in keeps this test fast
    monkeypatch.setattr(embed, "_sentence_transformer", lambda path: type("E", (), {
        "encode": staticmethod(lambda texts, **kw: np.array([[len(t), t.count("a") + 1.0] for t in texts]))})())
    out = tmp_path / "lin"
    code = main(["eval", "linearity", str(saved / "adapter"), str(saved / "v.safetensors"),
                 "--model", str(saved / "model"), "--no-chat", "--prompts-file", str(saved / "prompts.txt"),
                 "--batches", "2", "--max-new-tokens", "6", "--control", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "linearity score" in printed and "random-vector control" in printed
    assert (out / "linearity.json").is_file() and (out / "linearity_heatmap.png").is_file()


def test_cli_errors_are_one_line(saved, capsys):
    code = main(["eval", "sweep", str(saved / "v.safetensors"), "--model", str(saved / "model"), "--prompts", "hi",
                 "--metrics", "nomodule_xyz:f"])
    assert code == 2 and "cannot import" in capsys.readouterr().err
    code = main(["eval", "linearity", str(saved), str(saved / "v.safetensors"),
                 "--prompts", "a", "--summarizer", "http"])
    assert code == 2 and "--judge-url" in capsys.readouterr().err
