"""Config dataclasses (issue 14): derived from the functions, validated, sorted JSON with a version, readable
across versions, accepted as ``config=``, and mirrored one flag per field by the generated CLI options."""

import argparse
import dataclasses
import inspect
import json

import pytest

import steerscope as ss
from steerscope.configs import add_config_flags, config_from_args

CONFIGS = ["MelboConfig", "OrthoConfig", "OneShotConfig", "LoraDiscoveryConfig", "ContrastiveConfig", "SweepConfig",
           "TransferConfig", "LinearityConfig", "ExportConfig", "KLConfig"]
FUNCTIONS = {"MelboConfig": "melbo", "OrthoConfig": "melbo_ortho", "OneShotConfig": "optimize_vector",
             "LoraDiscoveryConfig": "discover_lora", "ContrastiveConfig": "contrastive_vector", "SweepConfig": "sweep",
             "TransferConfig": "evaluate_transfer", "LinearityConfig": "linearity_score", "ExportConfig": "export_lora",
             "KLConfig": "kl_divergence"}


REQUIRED = {"OneShotConfig": {"layer": 3}, "TransferConfig": {"targets": ["Sure"]}}


def make(name):
    return getattr(ss, name)(**REQUIRED.get(name, {}))


@pytest.mark.parametrize("name", CONFIGS)
def test_fields_are_the_functions_keywords_with_the_same_defaults(name):
    fn = getattr(ss, FUNCTIONS[name])
    params = {p.name: p.default for p in inspect.signature(fn).parameters.values()
              if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "config"}
    expected = {k: v for k, v in params.items() if v is not inspect.Parameter.empty}
    assert make(name).as_kwargs() == {**expected, **REQUIRED.get(name, {})}
    assert set(params) - set(expected) == set(REQUIRED.get(name, {}))  # required keywords stay required
    assert "config" in inspect.signature(fn).parameters


@pytest.mark.parametrize("name", CONFIGS)
def test_sorted_json_round_trip_with_version(name, tmp_path):
    cls = getattr(ss, name)
    cfg = make(name)
    text = cfg.to_json()
    data = json.loads(text)
    assert data["config_version"] == 1 and data["method"] == cls.method_name
    assert list(data["settings"]) == sorted(data["settings"])
    cfg.save(tmp_path / "c.json")
    assert cls.load(tmp_path / "c.json") == cfg


def test_unknown_keys_warn_and_missing_keys_default():
    data = ss.MelboConfig(num_vectors=3).to_dict()
    data["settings"]["from_the_future"] = 1
    del data["settings"]["steps"]
    with pytest.warns(UserWarning, match="from_the_future"):
        cfg = ss.MelboConfig.from_dict(data)
    assert cfg.num_vectors == 3 and cfg.steps == ss.MelboConfig().steps


def test_validation_names_the_field():
    with pytest.raises(ss.SteerscopeError, match="num_vectors must be int"):
        ss.MelboConfig(num_vectors="many")
    with pytest.raises(ss.SteerscopeError, match="not 'melbo'"):
        ss.MelboConfig.from_dict({"method": "sweep", "settings": {}})
    with pytest.raises(ss.SteerscopeError, match="MelboConfig"):
        ss.melbo(None, ["hi"], config=ss.SweepConfig())


def test_cli_flags_mirror_the_config():
    parser = argparse.ArgumentParser()
    add_config_flags(parser, ss.MelboConfig, skip=("progress",), rename={"out_dir": "out"})
    args = parser.parse_args(["--num-vectors", "5", "--no-orthogonal", "--lr", "0.1", "--out", "run"])
    cfg = config_from_args(ss.MelboConfig, args)
    assert (cfg.num_vectors, cfg.orthogonal, cfg.lr, cfg.out_dir) == (5, False, 0.1, "run")
    defaults = config_from_args(ss.MelboConfig, parser.parse_args([]))
    assert dataclasses.replace(defaults, progress=True) == ss.MelboConfig()
    assert "tol" in parser.format_help()


def test_config_argument_runs_the_method_and_keywords_override():
    from tiny import tiny_model

    m = tiny_model("llama")
    cfg = ss.MelboConfig(source_layer=0, target_layer=2, num_vectors=2, radius=2.0, steps=3, lr=0.05, chat=False,
                         progress=False, report=False, heldout_kl=False)
    a = ss.melbo(m, ["hello there", "hi"], config=cfg)
    b = ss.melbo(m, ["hello there", "hi"], **cfg.as_kwargs())
    assert a.vectors.tensors[0].equal(b.vectors.tensors[0])
    c = ss.melbo(m, ["hello there", "hi"], config=cfg, num_vectors=1)
    assert len(c.vectors) == 1
