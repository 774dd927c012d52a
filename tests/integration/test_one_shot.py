"""One-shot optimisation and transfer evaluation on tiny random models: the replayed batch equals the reference."""

import json

import pytest
import torch
from reference.one_shot_naive import naive_completion_loss, optimize_vector_naive
from tiny import ARCHS, tiny_model

import steerscope as ss
from steerscope.cli.main import main as cli_main
from steerscope.completions import pack_completions
from steerscope.errors import InvalidArgumentError, SteerscopeError
from steerscope.generate import forward_kwargs
from steerscope.methods.one_shot import Example, _ReplayObjective, apply_operator, optimize_vector
from steerscope.runs import evaluate_transfer

EXAMPLES = [
    Example("the cat sat", promote=["on the mat", "ok"], suppress=["no"]),
    Example("hello there friend", promote=["yes"], negate=True, positions="last:2"),
    Example("a b", suppress=["zz"], positions="prompt"),
]


def init_vector(m, seed=0, norm=1.0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(m.d_model, generator=g)
    return v * (norm / v.norm())


def naive_total(m, v, layer, site, operator, normalize=False):
    total = 0.0
    for ex in EXAMPLES:
        for c, sup in [(c, False) for c in ex.promote] + [(c, True) for c in ex.suppress]:
            total += float(
                naive_completion_loss(
                    m,
                    v,
                    ex,
                    c,
                    suppress=sup,
                    layer=layer,
                    site=site,
                    operator=operator,
                    normalize_by_length=normalize,
                    chat=False,
                )
            )
    return total


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("site,operator", [("resid_pre", "add"), ("resid_post", "clamp")])
def test_batched_loss_equals_sum_of_full_model_losses(arch, site, operator):
    m = tiny_model(arch)
    for layer in (0, m.n_layers - 1):  # includes resid_post of the last block (no blocks left to replay)
        v = init_vector(m, seed=layer, norm=3.0)
        res = optimize_vector(
            m,
            EXAMPLES,
            layer=layer,
            site=site,
            operator=operator,
            max_iters=0,
            init=v,
            normalize_by_length=True,
            chat=False,
            progress=False,
        )
        want = naive_total(m, v, layer, site, operator, normalize=True)
        assert res.final_loss == pytest.approx(want, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gemma3_text"])
@pytest.mark.parametrize("operator", ["add", "clamp"])
def test_trajectory_equals_naive_loop(arch, operator):
    m = tiny_model(arch)
    kw = {
        "layer": 1,
        "site": "resid_pre",
        "lr": 0.1,
        "max_iters": 4,
        "max_norm": 1.3,
        "operator": operator,
        "chat": False,
    }
    init = init_vector(m)
    fast = optimize_vector(m, EXAMPLES, init=init, tol=0.0, progress=False, **kw)
    v, losses, _ = optimize_vector_naive(m, EXAMPLES, init=init, **kw)
    assert fast.losses == pytest.approx(losses, rel=1e-5, abs=1e-5)
    torch.testing.assert_close(fast.vector.directions[1], v, atol=1e-5, rtol=1e-4)


def test_gradient_reaches_only_the_vector():
    m = tiny_model("llama")
    batch = pack_completions(m, [("the cat", "sat"), ("a dog", "ran")], chat=False)
    objective = _ReplayObjective(m, batch, 1, "resid_pre")
    v = torch.zeros(m.d_model, requires_grad=True)
    mask = batch.steer_mask(["all", "all"])
    steered = apply_operator(objective.hidden, v, mask, torch.ones(2, 1, 1), "add")
    objective.logprobs(steered, 0.7).sum().backward()
    assert v.grad is not None and v.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in m.hf.parameters())
    optimize_vector(m, EXAMPLES, layer=1, max_iters=2, chat=False, progress=False)
    assert all(p.grad is None for p in m.hf.parameters())


def test_unfrozen_model_is_refused():
    m = tiny_model("qwen2")
    param = next(m.hf.parameters())
    param.requires_grad_(True)
    try:
        with pytest.raises(SteerscopeError, match="frozen"):
            optimize_vector(m, EXAMPLES, layer=1, max_iters=1, chat=False, progress=False)
    finally:
        param.requires_grad_(False)


def test_max_norm_is_respected():
    m = tiny_model("llama")
    res = optimize_vector(
        m,
        EXAMPLES,
        layer=1,
        lr=0.5,
        max_iters=6,
        max_norm=0.7,
        init_norm=0.5,
        chat=False,
        progress=False,
        tol=0.0,
    )
    assert res.history[0]["norm"] == pytest.approx(0.5, rel=1e-5)
    assert all(row["norm"] <= 0.7 + 1e-5 for row in res.history)
    assert res.vector.norm() <= 0.7 + 1e-5 and res.vector.norm() == pytest.approx(0.7, rel=1e-4)


def test_metadata_stop_rules_and_saving(tmp_path):
    m = tiny_model("llama")
    res = optimize_vector(m, EXAMPLES, layer=2, site="resid_post", max_iters=3, chat=False, progress=False)
    v = res.vector
    assert v.site == "resid_post" and v.layers == [2] and v.method == "one_shot"
    assert v.meta.method_config["steps"] == 3 and len(v.meta.method_config["examples"]) == 3
    assert res.stop_reason == "max_iters" and len(res.losses) == 3
    out = ss.write_run(res, tmp_path / "v")
    assert ss.SteeringVector.load(out / "vector.safetensors").meta.method_config["final_loss"] == pytest.approx(
        res.final_loss
    )
    assert (out / "history.csv").is_file() and (out / "loss.png").is_file()
    # target reached at the first step: stop without updating
    hit = optimize_vector(m, EXAMPLES, layer=1, max_iters=5, target_loss=1e6, chat=False, progress=False)
    assert hit.stop_reason == "target_loss" and len(hit.history) == 1 and hit.history[0]["grad_norm"] is None
    # satisficing minimises (loss - target)^2
    sat = optimize_vector(
        m, EXAMPLES, layer=1, max_iters=2, target_loss=10.0, satisfice=True, chat=False, progress=False
    )
    row = sat.history[0]
    assert row["objective"] == pytest.approx((row["loss"] - 10.0) ** 2, rel=1e-5)
    # a zero learning-rate-like plateau converges
    flat = optimize_vector(
        m, EXAMPLES, layer=1, lr=1e-9, max_iters=50, tol=1e-3, patience=2, chat=False, progress=False
    )
    assert flat.stop_reason == "converged" and len(flat.history) == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"site": "mlp_out"},
        {"operator": "ablate"},
        {"lr": 0.0},
        {"max_iters": -1},
        {"satisfice": True},
        {"max_norm": -1.0},
        {"layer": 7},
    ],
)
def test_bad_arguments(kwargs):
    m = tiny_model("llama")
    args = {"layer": 1, "chat": False, "progress": False, **kwargs}
    with pytest.raises(SteerscopeError):
        optimize_vector(m, EXAMPLES, **args)
    with pytest.raises(InvalidArgumentError):
        optimize_vector(m, [], layer=1)


def _logprob_alone(m, vector, scale, prompt, target, positions, operator):
    batch = pack_completions(m, [(prompt, target)], chat=False)
    with torch.no_grad(), ss.prompt_lengths(batch.prompt_len), ss.steer(m, vector, scale, positions=positions,
                                                                       operator=operator):
        logits = m.hf(**forward_kwargs(batch.ids, batch.mask)).logits
    lp = torch.log_softmax(logits.reshape(-1, logits.shape[-1])[batch.pred_index], -1)
    return float(lp.gather(-1, batch.target_ids[:, None]).sum())


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gemma2"])
@pytest.mark.parametrize("positions,operator", [("all", "add"), ("prompt", "clamp")])
def test_transfer_batched_logprobs_equal_single_runs(arch, positions, operator, tmp_path):
    m = tiny_model(arch)
    v = ss.SteeringVector({1: init_vector(m, norm=4.0)})
    prompts, targets = ["the cat", "a dog ran far", "hi"], ["ab", "xyz q"]
    res = evaluate_transfer(
        m,
        v,
        prompts,
        targets=targets,
        scales=[-1.0, 0.0, 2.0],
        match=["A"],
        chat=False,
        positions=positions,
        operator=operator,
        max_new_tokens=4,
        batch_size=5,
        progress=False,
        out_dir=tmp_path,
    )
    for row in res.rows:
        want = (
            sum(_logprob_alone(m, v, row["scale"], row["prompt"], t, positions, operator) for t in targets)
            / 2
        )
        base = sum(_logprob_alone(m, None, 0.0, row["prompt"], t, positions, operator) for t in targets) / 2
        assert row["logprob"] == pytest.approx(want, abs=1e-4)
        assert row["delta_logprob"] == pytest.approx(want - base, abs=1e-4)
        assert row["hit"] == ("a" in row["generation"].lower())
    if operator == "add":
        assert res.at(0.0)["mean_delta_logprob"] == 0.0
    outs = ss.generate(
        m,
        prompts,
        vectors=[v] * 3,
        scales=2.0,
        max_new_tokens=4,
        chat=False,
        positions=positions,
        operator=operator,
    )
    assert [r["generation"] for r in res.rows if r["scale"] == 2.0] == outs
    assert (tmp_path / "transfer.png").is_file() and (tmp_path / "transfer.csv").is_file()


def test_cli_optimize_and_eval_transfer(tmp_path, capsys):
    m = tiny_model("llama")
    model_dir = tmp_path / "tiny"
    m.hf.save_pretrained(model_dir)
    m.tokenizer.save_pretrained(model_dir)
    examples = tmp_path / "ex.jsonl"
    examples.write_text(json.dumps({"prompt": "a b", "suppress": ["zz"], "positions": "prompt"}) + "\n")
    out = tmp_path / "v"
    rc = cli_main(
        [
            "optimize",
            "--model",
            str(model_dir),
            "--no-chat",
            "--prompt",
            "the cat",
            "--promote",
            "sat",
            "--examples",
            str(examples),
            "--layer",
            "1",
            "--max-iters",
            "3",
            "--lr",
            "0.1",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    assert {"vector.safetensors", "history.csv", "loss.png", "config.json", "summary.json"} <= {
        p.name for p in out.iterdir()}
    v = ss.SteeringVector.load(out / "vector.safetensors")
    assert len(v.meta.method_config["examples"]) == 2
    rc = cli_main(
        [
            "eval",
            "transfer",
            "--model",
            str(model_dir),
            "--no-chat",
            str(out),
            "the dog",
            "hi",
            "--targets",
            "sat",
            "--scales",
            "-1",
            "0",
            "1",
            "--max-new-tokens",
            "3",
            "--out",
            str(tmp_path / "tr"),
        ]
    )
    assert rc == 0
    assert "Δ log p" in capsys.readouterr().out
    assert {"transfer.csv", "transfer.png", "generations.jsonl"} <= {
        p.name for p in (tmp_path / "tr").iterdir()
    }
    assert cli_main(["optimize", "--layer", "1", "--promote", "x"]) == 2
    assert cli_main(["optimize", "--layer", "1", "--prompt", "p", "--promote", "x", "--satisfice"]) == 2


@pytest.mark.parametrize("arch", ARCHS)
def test_shared_prompt_packing_equals_one_row_per_completion(arch):
    m = tiny_model(arch)
    v = init_vector(m, norm=2.0)
    kw = {"layer": 1, "max_iters": 0, "init": v, "chat": False, "progress": False}
    rows = optimize_vector(m, EXAMPLES, share_prompt=False, **kw)
    auto = optimize_vector(m, EXAMPLES, **kw)
    assert auto.final_loss == pytest.approx(rows.final_loss, rel=1e-5, abs=1e-5)
    if arch.startswith("gemma"):  # tiny Gemmas have a 4-token sliding window: packing would not be exact
        with pytest.raises(InvalidArgumentError, match="sliding"):
            optimize_vector(m, EXAMPLES, share_prompt=True, **kw)
