"""discover_lora on a tiny model: run-directory layout, the model is left untouched, resume, CLI."""

import json

import pytest
import torch
from tiny import tiny_model

import steerscope as ss
from steerscope.cli.main import main
from steerscope.generate import forward_kwargs, tokenize

TRAIN = ["the cat sat", "hi there", "a longer prompt here", "dogs bark", "x y z", "hello world"]
HELD = ["what now", "tell me more"]


def logits(m):
    ids, mask = tokenize(m, TRAIN, chat=False)
    with torch.no_grad():
        return m.hf(**forward_kwargs(ids, mask)).logits


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_discover_lora_writes_runs_and_restores_model(arch, tmp_path):
    m = tiny_model(arch)
    before = logits(m)
    types = [type(x).__name__ for x in m.hf.modules()]
    res = ss.discover_lora(m, TRAIN, heldout_prompts=HELD, runs=2, epochs=2, max_steps=3, batch_size=3, max_new_tokens=5,
                           lr=0.05, out_dir=tmp_path / "run", chat=False, eval_size=2, num_samples=2, progress=False,
                           stop_kl=None)
    assert [r.index for r in res.runs] == [0, 1]
    for r in res.runs:
        assert (r.adapter_dir / "adapter_config.json").is_file()
        assert (r.adapter_dir / "adapter_model.safetensors").is_file()
        assert (r.dir / "losses.png").is_file()
        from steerscope.io import read_csv, read_jsonl

        rows = read_csv(r.dir / "losses.csv")
        assert len(rows) == 3 and {"loss", "kl", "nll", "base_nll"} <= set(rows[0])
        samples = read_jsonl(r.dir / "samples.jsonl")
        assert len(samples) == 2 and {"prompt", "base", "adapted"} <= set(samples[0])
        assert r.heldout["kl"] > 0 and r.heldout["tokens"] > 0
        cfg = json.loads((r.adapter_dir / "adapter_config.json").read_text())
        assert cfg["peft_type"] == "LORA" and cfg["r"] == 2
    # independent runs differ
    from safetensors.torch import load_file

    a = load_file(res.runs[0].adapter_dir / "adapter_model.safetensors")
    b = load_file(res.runs[1].adapter_dir / "adapter_model.safetensors")
    assert any(not torch.equal(a[k], b[k]) for k in a)
    # model untouched
    assert [type(x).__name__ for x in m.hf.modules()] == types
    assert torch.equal(logits(m), before)
    assert not any(p.requires_grad for p in m.hf.parameters())
    # the adapter is a standard PEFT directory: vector_from_lora reads it
    v = ss.vector_from_lora(m, res.runs[0].adapter_dir, HELD, max_new_tokens=3, chat=False)
    assert v.norm() > 0


def test_stop_kl_keeps_the_last_state_under_the_bound(tmp_path):
    m = tiny_model("llama")
    res = ss.discover_lora(m, TRAIN * 4, heldout_prompts=HELD, max_steps=8, batch_size=3, max_new_tokens=4,
                           lr=0.2, stop_kl=1e-3, out_dir=tmp_path / "run", chat=False, eval_size=1, num_samples=0,
                           progress=False)
    from steerscope.io import read_csv, read_json

    rows = read_csv(res.runs[0].dir / "losses.csv")
    summary = read_json(res.runs[0].dir / "summary.json")
    assert summary["stopped_by"] == "stop_kl"
    assert rows[-1]["kl"] > 1e-3 and all(r["kl"] <= 1e-3 for r in rows[:-1])
    assert summary["updates"] == len(rows) - 2  # the update that crossed the bound was undone


def test_resume_skips_finished_runs_and_rejects_other_settings(tmp_path):
    m = tiny_model("llama")
    kw = {"heldout_prompts": HELD, "max_steps": 1, "batch_size": 3, "max_new_tokens": 3, "out_dir": tmp_path / "run",
              "chat": False, "eval_size": 1, "num_samples": 1, "progress": False}
    ss.discover_lora(m, TRAIN, runs=1, **kw)
    stamp = (tmp_path / "run/run_000/summary.json").stat().st_mtime_ns
    with pytest.raises(ss.SteerscopeError, match="resume=True"):  # resume=False never overwrites a run
        ss.discover_lora(m, TRAIN, runs=2, **kw)
    res = ss.discover_lora(m, TRAIN, runs=2, resume=True, **kw)
    assert len(res.runs) == 2
    assert (tmp_path / "run/run_000/summary.json").stat().st_mtime_ns == stamp
    with pytest.raises(ss.SteerscopeError, match=r"settings differ from the original run \(max_new_tokens"):
        ss.discover_lora(m, TRAIN, runs=2, resume=True, **{**kw, "max_new_tokens": 4})


def test_bad_arguments():
    m = tiny_model("llama")
    with pytest.raises(ss.SteerscopeError):
        ss.discover_lora(m, TRAIN, heldout_prompts=HELD, rank=0, chat=False)
    with pytest.raises(ss.SteerscopeError):
        ss.discover_lora(m, TRAIN, heldout_prompts=HELD, lr=-1.0, chat=False)


def test_cli_discover_and_extract(tmp_path, capsys):
    m = tiny_model("llama")
    model_dir = tmp_path / "model"
    m.hf.save_pretrained(model_dir)
    m.tokenizer.save_pretrained(model_dir)
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(TRAIN))
    held = tmp_path / "h.txt"
    held.write_text("\n".join(HELD))
    out = tmp_path / "runs"
    code = main(["discover", "lora", "--model", str(model_dir), "--prompts-file", str(prompts), "--heldout-file",
                 str(held), "--max-steps", "2", "--batch-size", "3", "--max-new-tokens", "4", "--eval-size", "2",
                 "--num-samples", "1", "--no-chat", "--lr", "0.05", "--out", str(out)])
    assert code == 0
    assert "heldout_kl" in capsys.readouterr().out
    adapter = out / "run_000" / "adapter"
    code = main(["extract", "lora", str(adapter), "--model", str(model_dir), "--prompts-file", str(held),
                 "--max-new-tokens", "3", "--no-chat", "--out", str(tmp_path / "v.safetensors")])
    assert code == 0
    v = ss.SteeringVector.load(tmp_path / "v.safetensors")
    assert v.method == "lora" and len(v.layers) == m.n_layers

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"positive": p, "negative": n}) + "\n"
                             for p, n in [("good day", "bad day"), ("yes", "no")]))
    code = main(["extract", "contrastive", str(pairs), "--model", str(model_dir), "--layers", "0,1",
                 "--method", "pca", "--no-chat", "--out", str(tmp_path / "c.safetensors")])
    assert code == 0
    c = ss.SteeringVector.load(tmp_path / "c.safetensors")
    assert c.layers == [0, 1] and c.method == "pca"
    # errors are one line, exit 2
    assert main(["extract", "lora", str(tmp_path / "nope"), "--model", str(model_dir), "--no-chat",
                 "--out", str(tmp_path / "x.safetensors")]) == 2
    assert main(["extract", "contrastive", "no_such_set", "--model", str(model_dir),
                 "--out", str(tmp_path / "x.safetensors")]) == 2
