"""SHA-256 checksums in vector files and GGUF control vectors: recorded, verified, and old files still load."""

from __future__ import annotations

import hashlib
import json
import struct
import warnings

import numpy as np
import pytest
import torch
from gguf import GGUFReader, GGUFWriter
from safetensors.torch import save_file

import steerscope as ss
from steerscope.errors import ShapeMismatchError, UnverifiedVectorFileWarning, VectorFileError
from steerscope.export.gguf import KEY_CHECKSUMS, export_gguf, import_gguf


def _vector():
    return ss.SteeringVector({1: torch.arange(8, dtype=torch.float32), 4: -torch.ones(8)}, method="t", notes="n")


def _header(path) -> tuple[int, dict]:
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    table = json.loads(data[8:8 + n])
    return n, table


def test_header_records_sha256_of_each_tensor_as_stored(tmp_path):
    path = _vector().save(tmp_path / "v.safetensors")
    n, table = _header(path)
    header = json.loads(table["__metadata__"]["steerscope"])
    sums = header["checksums"]
    assert sums["algorithm"] == "sha256" and sorted(sums["tensors"]) == ["layers.1", "layers.4"]
    body = path.read_bytes()[8 + n:]
    start, end = table["layers.4"]["data_offsets"]
    assert sums["tensors"]["layers.4"] == hashlib.sha256(body[start:end]).hexdigest()
    assert body[start:end] == np.full(8, -1.0, dtype="<f4").tobytes()


def test_a_flipped_bit_in_tensor_data_is_refused_naming_the_tensor(tmp_path):
    path = _vector().save(tmp_path / "v.safetensors")
    n, table = _header(path)
    data = bytearray(path.read_bytes())
    data[8 + n + table["layers.4"]["data_offsets"][0] + 5] ^= 0x01  # one bit of layers.4
    path.write_bytes(bytes(data))
    with pytest.raises(VectorFileError, match="tensor layers.4 does not match its SHA-256"):
        ss.SteeringVector.load(path)


def test_an_edited_header_value_is_refused(tmp_path):
    path = _vector().save(tmp_path / "v.safetensors")
    data = path.read_bytes().replace(b'\\"notes\\": \\"n\\"', b'\\"notes\\": \\"m\\"')
    assert data != path.read_bytes()
    path.write_bytes(data)
    with pytest.raises(VectorFileError, match="header does not match"):
        ss.SteeringVector.load(path)


def _old_file(path, header: dict, tensors: dict):
    save_file(tensors, str(path), metadata={"steerscope": json.dumps(header)})
    return path


OLD = {"format_version": 1, "kind": "vector", "site": "resid_post", "layers": [2], "d_model": 4, "notes": "old"}


def test_files_without_checksums_load_with_a_warning(tmp_path):
    path = _old_file(tmp_path / "old.safetensors", OLD, {"layers.2": torch.ones(4)})
    with pytest.warns(UnverifiedVectorFileWarning, match="no checksums"):
        v = ss.SteeringVector.load(path)
    assert torch.equal(v.directions[2], torch.ones(4)) and v.meta.notes == "old"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # re-saving adds checksums: no warning any more
        resaved = ss.SteeringVector.load(v.save(tmp_path / "new.safetensors"))
    assert "checksums" in json.loads(_header(tmp_path / "new.safetensors")[1]["__metadata__"]["steerscope"])
    assert torch.equal(resaved.directions[2], v.directions[2])


@pytest.mark.parametrize(("change", "message"), [
    ({"d_model": "4"}, "'d_model' must be a positive integer"),
    ({"d_model": 5}, r"shape \[4\] but the header says d_model 5"),
    ({"layers": "2"}, "'layers' must be a list"),
    ({"layers": [True]}, "'layers' must be a list"),
    ({"format_version": True}, "format_version True"),
    ({"notes": 3.5}, "'notes' must be a string"),
    ({"method_config": [1]}, "'method_config' must be an object"),
])
def test_corrupt_headers_say_what_is_wrong(tmp_path, change, message):
    path = _old_file(tmp_path / "bad.safetensors", {**OLD, **change}, {"layers.2": torch.ones(4)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedVectorFileWarning)
        with pytest.raises((VectorFileError, ShapeMismatchError), match=message):
            ss.SteeringVector.load(path)


def test_non_object_header_is_a_clean_error(tmp_path):
    save_file({"layers.2": torch.ones(4)}, str(tmp_path / "s.safetensors"), metadata={"steerscope": '"a string"'})
    with pytest.raises(VectorFileError, match="not an object"):
        ss.SteeringVector.load(tmp_path / "s.safetensors")


def test_gguf_checksums_recorded_and_verified(tmp_path):
    path = export_gguf(_vector(), tmp_path / "v.gguf", scale=2.0)
    reader = GGUFReader(str(path))
    sums = json.loads(reader.get_field(KEY_CHECKSUMS).contents())
    assert sums["algorithm"] == "sha256" and sorted(sums["tensors"]) == ["direction.1", "direction.4"]
    tensor = next(t for t in reader.tensors if t.name == "direction.4")
    data = bytearray(path.read_bytes())
    data[int(tensor.data_offset) + 3] ^= 0x10
    bad = tmp_path / "flipped.gguf"
    bad.write_bytes(bytes(data))
    with pytest.raises(VectorFileError, match="direction.4 does not match its SHA-256"):
        import_gguf(bad)


def test_gguf_tensor_count_edit_and_non_utf8_header_are_refused(tmp_path):
    path = export_gguf(_vector(), tmp_path / "v.gguf")
    data = path.read_bytes()
    (count,) = struct.unpack_from("<Q", data, 8)
    for value in (count - 1, count + 1, 0):
        edited = tmp_path / f"count{value}.gguf"
        edited.write_bytes(data[:8] + struct.pack("<Q", value) + data[16:])
        with pytest.raises(VectorFileError):
            import_gguf(edited)
    at = data.find(b"controlvector.model_hint") + len(b"controlvector.model_hint") + 4 + 8
    garbled = tmp_path / "garbled.gguf"
    garbled.write_bytes(data[:at] + b"\xff" + data[at + 1:])
    with pytest.raises(VectorFileError):
        import_gguf(garbled)


def test_gguf_without_checksums_from_other_tools_still_imports(tmp_path):
    path = tmp_path / "foreign.gguf"
    writer = GGUFWriter(str(path), "controlvector")
    writer.add_string("controlvector.model_hint", "llama")
    writer.add_int32("controlvector.layer_count", 30)
    writer.add_tensor("direction.3", np.ones(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    v = import_gguf(path)
    assert v.layers == [3] and torch.equal(v.directions[3], torch.ones(8))
