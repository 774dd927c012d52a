"""llama.cpp control-vector GGUF: layout, layer mapping, exact round trip, files from other tools, refusals."""

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter

import steerscope as ss
from steerscope.cli.main import main
from steerscope.errors import InvalidArgumentError, VectorFileError
from steerscope.export.gguf import export_gguf, gguf_layers, import_gguf


def vec(layers=(3, 7), d=16, site="resid_post", seed=0):
    g = torch.Generator().manual_seed(seed)
    return ss.SteeringVector({layer: torch.randn(d, generator=g) for layer in layers}, site, model_type="llama",
                             model_name="tiny", method="caa", method_config={"k": 1})


def test_written_file_matches_llama_cpp_layout(tmp_path):
    path = export_gguf(vec(), tmp_path / "v.gguf", scale=2.0)
    reader = GGUFReader(str(path))
    fields = reader.fields
    assert fields["general.architecture"].contents() == "controlvector"
    assert fields["controlvector.model_hint"].types == [GGUFValueType.STRING]
    assert fields["controlvector.model_hint"].contents() == "llama"
    assert fields["controlvector.layer_count"].types == [GGUFValueType.INT32]
    assert fields["controlvector.layer_count"].contents() == 2
    tensors = {t.name: t for t in reader.tensors}
    assert sorted(tensors) == ["direction.3", "direction.7"]
    for t in tensors.values():
        assert t.tensor_type == GGMLQuantizationType.F32
        assert list(t.shape) == [16]


def test_round_trip_is_exact_with_scale_baked_in(tmp_path):
    v = vec()
    w = import_gguf(export_gguf(v, tmp_path / "v.gguf", scale=-1.5))
    assert w.site == "resid_post" and w.layers == v.layers
    for layer in v.layers:
        assert torch.equal(w.directions[layer], (v.directions[layer].double() * -1.5).float())
    assert w.meta.model_type == "llama" and w.meta.model_name == "tiny"
    assert w.meta.method_config["original_method"] == "caa" and w.meta.method_config["scale"] == -1.5
    # unit scale: bit-identical float32 tensors
    w1 = import_gguf(export_gguf(v, tmp_path / "v1.gguf"))
    assert all(torch.equal(w1.directions[k], v.directions[k]) for k in v.layers)


def test_layer_mapping_follows_llama_cpp():
    # llama.cpp adds direction.N to the output of 0-based block N = our resid_post[N]
    assert gguf_layers(vec((1, 29))) == {1: 1, 29: 29}
    # resid_pre[L] is the output of block L-1
    assert gguf_layers(vec((2, 10), site="resid_pre")) == {2: 1, 10: 9}


@pytest.mark.parametrize("site,layers", [("mlp_out", (3,)), ("attn_out", (3,)), ("resid_post", (0, 3)),
                                          ("resid_pre", (1,)), ("resid_pre", (0,))])
def test_refuses_what_llama_cpp_cannot_express(tmp_path, site, layers):
    with pytest.raises(InvalidArgumentError, match="llama.cpp|control vectors"):
        export_gguf(vec(layers, site=site), tmp_path / "v.gguf")
    assert not (tmp_path / "v.gguf").exists()


def write_foreign(path, tensors: dict, arch="controlvector", hint="mistral", count_type="uint32", count=None):
    """A file as llama.cpp's cvector-generator / repeng write it (no steerscope header)."""
    w = GGUFWriter(str(path), arch)
    if hint is not None:
        w.add_string("controlvector.model_hint", hint)
    getattr(w, f"add_{count_type}")("controlvector.layer_count", count if count is not None else len(tensors))
    for name, array in tensors.items():
        w.add_tensor(name, array)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_imports_files_from_other_tools(tmp_path):
    arrays = {f"direction.{i}": np.random.default_rng(i).standard_normal(8).astype(np.float32) for i in range(1, 6)}
    path = write_foreign(tmp_path / "repeng.gguf", arrays, count=31)  # cvector-generator writes n_layer - 1
    v = import_gguf(path)
    assert v.layers == [1, 2, 3, 4, 5] and v.site == "resid_post" and v.d_model == 8
    assert v.meta.model_type == "mistral"
    assert np.array_equal(v.directions[4].numpy(), arrays["direction.4"])
    assert v.meta.method == "gguf_import" and v.meta.method_config["layer_count"] == 31
    assert import_gguf(path, model_type="llama").meta.model_type == "llama"


def test_import_accepts_f16(tmp_path):
    a = np.arange(8, dtype=np.float16)
    v = import_gguf(write_foreign(tmp_path / "h.gguf", {"direction.2": a}))
    assert torch.equal(v.directions[2], torch.arange(8, dtype=torch.float32))


@pytest.mark.parametrize("tensors,arch,match", [
    ({"direction.0": np.ones(4, np.float32)}, "controlvector", "N >= 1"),
    ({"direction.1": np.ones(4, np.float32), "direction.2": np.ones(5, np.float32)}, "controlvector", "widths"),
    ({"token_embd.weight": np.ones(4, np.float32)}, "controlvector", "no direction"),
    ({"direction.1": np.ones(4, np.float32)}, "llama", "not a control vector"),
    ({"direction.1": np.ones((2, 4), np.float32)}, "controlvector", "1-D"),
    ({"direction.1": np.array([1.0, np.nan], np.float32)}, "controlvector", "NaN"),
])
def test_import_refuses_bad_files(tmp_path, tensors, arch, match):
    path = write_foreign(tmp_path / "bad.gguf", tensors, arch=arch)
    with pytest.raises(VectorFileError, match=match):
        import_gguf(path)


def test_import_refuses_missing_and_non_gguf_files(tmp_path):
    with pytest.raises(VectorFileError, match="does not exist"):
        import_gguf(tmp_path / "missing.gguf")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(VectorFileError, match="not a readable GGUF"):
        import_gguf(tmp_path / "junk.gguf")


def test_cli_export_and_import(tmp_path, capsys):
    v = vec()
    v.save(tmp_path / "v.safetensors")
    assert main(["export", "gguf", str(tmp_path / "v.safetensors"), "--out", str(tmp_path / "v.gguf"),
                 "--scale", "3"]) == 0
    assert "direction.3" in capsys.readouterr().out
    assert main(["export", "import-gguf", str(tmp_path / "v.gguf"), "--out", str(tmp_path / "back.safetensors")]) == 0
    back = ss.load_vector(tmp_path / "back.safetensors")
    assert torch.equal(back.directions[7], (v.directions[7].double() * 3).float())
    ss.SteeringVector({2: torch.ones(4)}, "mlp_out").save(tmp_path / "m.safetensors")
    assert main(["export", "gguf", str(tmp_path / "m.safetensors"), "--out", str(tmp_path / "m.gguf")]) == 2
    assert "block outputs only" in capsys.readouterr().err
