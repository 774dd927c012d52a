"""One vocabulary for arguments across the public API (issue 14, DESIGN.md "One vocabulary").

Every argument name of every public function is either shared vocabulary or a method's own, listed here: a new
name has to be added on purpose, and the synonyms that drifted in before (``held_out_prompts``, ``kl_prompts``,
``new_tokens``, ``steer_positions``) can never come back. Old spellings are still accepted through ``@renamed``
with a DeprecationWarning; they are not part of any signature.
"""

import inspect

import pytest

import steerscope as ss

SHARED = {
    "model", "prompts", "heldout_prompts", "layer", "layers", "source_layer", "target_layer", "scale", "positions",
    "score_positions", "max_new_tokens", "out_dir", "resume", "seed", "progress", "batch_size", "chat", "config",
    "site", "operator", "vector", "vectors", "do_sample", "temperature",
}
OWN = {  # a method's own concepts (one spelling each)
    "adapter", "alpha", "attn_implementation", "base_vector", "baseline", "batches", "behaviour", "beta",
    "block_size", "calibration_prompts", "center", "coldness", "collapse_patience", "collapse_ratio", "completions",
    "control", "detach", "device", "device_map", "direction", "do_generate", "dtype", "embedder", "epochs", "eps",
    "eval_size", "evaluate", "examples", "heldout_kl", "hf", "init", "init_norm", "judge", "kl_direction", "lengths",
    "lora_alpha", "lr", "match", "max_chars", "max_examples", "max_iters", "max_norm", "max_steps", "maximize",
    "method", "metrics", "min_new_tokens", "min_ratio", "min_ratio_patience", "mode", "model_hint", "model_type",
    "moving_average", "name", "name_or_path", "normalize_by_length", "num_samples", "num_vectors", "objective",
    "orthogonal", "out", "pairs", "path", "patience", "per_layer", "power", "prompt_baseline", "q", "quantization",
    "radius", "rank", "read_position", "reduction", "reference", "reference_scale", "report", "responses_a",
    "responses_b", "result", "run_dir", "runs", "samples", "sample_tokens", "sample_vectors", "satisfice", "scales", "share_prompt",
    "spec", "steered_batches", "steps", "stop_early", "stop_kl", "summarizer", "target_loss", "target_modules",
    "target_positions", "targets", "tokenizer", "tol", "tolerance", "top_p",
}
DRIFTED = {"held_out_prompts", "kl_prompts", "new_tokens", "steer_positions", "sample", "greedy", "no_resume"}
# `scales` means a grid of scales to sweep (sweep, evaluate_transfer) or generate's per-row list (a DESIGN contract)
SCALES_OK = {"generate", "sweep", "evaluate_transfer"}


def public_functions():
    for name in ss.__all__:
        obj = getattr(ss, name)
        if inspect.isfunction(obj):
            yield name, inspect.signature(obj)


@pytest.mark.parametrize("name,sig", list(public_functions()), ids=lambda x: x if isinstance(x, str) else "")
def test_argument_names_come_from_the_vocabulary(name, sig):
    params = sig.parameters
    unknown = set(params) - SHARED - OWN
    assert not unknown, f"{name}: argument names outside the vocabulary: {sorted(unknown)} (add them on purpose)"
    assert not set(params) & DRIFTED, f"{name}: a drifted synonym is back: {sorted(set(params) & DRIFTED)}"
    if "scales" in params:
        assert name in SCALES_OK, f"{name}: one scale or one per row is `scale`"
    if "resume" in params:
        assert params["resume"].default is False, f"{name}: resume defaults to False"
    if "out_dir" in params and params["out_dir"].kind is inspect.Parameter.KEYWORD_ONLY:
        assert params["out_dir"].default is None, f"{name}: out_dir defaults to None"
    if "max_new_tokens" in params and ("do_sample" in params or "temperature" in params):
        assert "seed" in params, f"{name}: anything that samples takes seed"


def test_old_spellings_still_work_with_a_warning():
    from tiny import tiny_model

    m = tiny_model("llama")
    v = ss.SteeringVector({1: __import__("torch").ones(m.d_model)})
    with pytest.warns(DeprecationWarning, match="scale="):
        a = ss.kl_divergence(m, [v], ["hello"], scales=2.0, chat=False)
    assert a.equal(ss.kl_divergence(m, [v], ["hello"], scale=2.0, chat=False))
    with pytest.raises(ss.SteerscopeError, match="give scale= only"):
        ss.kl_divergence(m, [v], ["hello"], scales=2.0, scale=1.0, chat=False)
