"""Vector algebra and the version-1 file format."""

import json

import pytest
import torch
from safetensors.torch import save_file

import steerscope as ss
from steerscope.errors import ShapeMismatchError, VectorFileError


def make(d=8, layers=(3,), seed=0):
    g = torch.Generator().manual_seed(seed)
    return ss.SteeringVector({layer: torch.randn(d, generator=g) for layer in layers}, method="test",
                             method_config={"lr": 0.1}, model_name="m", model_type="llama")


def test_algebra():
    v, w = make(seed=0), make(layers=(3, 5), seed=1)
    s = v + w
    assert s.layers == [3, 5]
    torch.testing.assert_close(s.directions[3], v.directions[3] + w.directions[3])
    torch.testing.assert_close((2 * v).directions[3], v.directions[3] * 2)
    torch.testing.assert_close((v - v).directions[3], torch.zeros(8))
    torch.testing.assert_close((-v / 2).directions[3], -v.directions[3] / 2)
    assert abs(v.normalized().directions[3].norm().item() - 1) < 1e-6
    assert abs(v.norm() - v.directions[3].norm().item()) < 1e-5
    with pytest.raises(ss.SteerscopeError):
        v + ss.SteeringVector({3: torch.ones(8)}, site="mlp_out")
    with pytest.raises(ShapeMismatchError):
        v + ss.SteeringVector({3: torch.ones(9)})


def test_save_load_exact_with_metadata(tmp_path):
    v = make(layers=(1, 4))
    path = v.save(tmp_path / "v.safetensors")
    back = ss.SteeringVector.load(path)
    assert back.layers == [1, 4]
    for layer in back.layers:
        assert torch.equal(back.directions[layer], v.directions[layer])
    assert back.method == "test" and back.meta.method_config == {"lr": 0.1} and back.meta.model_name == "m"
    header = back.header()
    for key in ("format_version", "steerscope_version", "site", "layers", "d_model", "model_type", "model_name",
                "method", "method_config", "created_at", "notes"):
        assert key in header
    assert not list(tmp_path.glob(".*tmp")), "temporary files left behind"


def test_vector_set_round_trip_and_index(tmp_path):
    vs = ss.VectorSet({7: torch.randn(5, 8)}, method="melbo")
    vs.save(tmp_path / "set.safetensors")
    back = ss.VectorSet.load(tmp_path / "set.safetensors")
    assert len(back) == 5 and torch.equal(back.tensors[7], vs.tensors[7])
    assert torch.equal(back[3].directions[7], vs.tensors[7][3])
    assert torch.equal(ss.load_vector(f"{tmp_path}/set.safetensors:2").directions[7], vs.tensors[7][2])
    with pytest.raises(VectorFileError, match="INDEX"):
        ss.load_vector(tmp_path / "set.safetensors")
    with pytest.raises(VectorFileError, match="VectorSet"):
        ss.SteeringVector.load(tmp_path / "set.safetensors")
    with pytest.raises(ss.SteerscopeError, match="out of range"):
        back[5]


def test_truncated_foreign_and_wrong_width_files(tmp_path):
    path = make().save(tmp_path / "v.safetensors")
    data = path.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(VectorFileError, match="truncated"):
        ss.SteeringVector.load(tmp_path / "trunc.safetensors")
    save_file({"weight": torch.ones(3)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(VectorFileError, match="not a steerscope vector"):
        ss.SteeringVector.load(tmp_path / "foreign.safetensors")
    header = make().header() | {"d_model": 16}
    save_file({"layers.3": torch.ones(8)}, str(tmp_path / "bad.safetensors"), metadata={"steerscope": json.dumps(header)})
    with pytest.raises(ShapeMismatchError, match="8.*16"):
        ss.SteeringVector.load(tmp_path / "bad.safetensors")
    header = make().header() | {"format_version": 99}
    save_file({"layers.3": torch.ones(8)}, str(tmp_path / "new.safetensors"), metadata={"steerscope": json.dumps(header)})
    with pytest.raises(VectorFileError, match="format_version 99"):
        ss.SteeringVector.load(tmp_path / "new.safetensors")
    with pytest.raises(VectorFileError, match="does not exist"):
        ss.SteeringVector.load(tmp_path / "missing.safetensors")


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = make(seed=0).save(tmp_path / "v.safetensors")
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", boom)
    with pytest.raises(OSError):
        make(seed=1).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["v.safetensors"]
