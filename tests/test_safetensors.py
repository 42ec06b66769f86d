"""minilora.hub.safetensors: every dtype round-trips, every malformed file is refused by name."""

import json
import struct

import numpy as np
import pytest

import minilora as ml
from minilora.hub import safetensors as st
from minilora.hub.safetensors import SafetensorsError


def craft(path, header, buffer=b"", length=None):
    """Write a file by hand: 8-byte length, header (a dict, or raw bytes), buffer."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + buffer)
    return path


def f32(shape, begin):
    n = 4 * int(np.prod(shape))
    return {"dtype": "F32", "shape": list(shape), "data_offsets": [begin, begin + n]}


ARRAYS = {
    "f64": np.linspace(-1, 1, 6).reshape(2, 3),
    "f32": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    "f16": np.array([0.5, -2.0, 65504.0], dtype=np.float16),
    "i64": np.array([[-(2**40), 3]], dtype=np.int64),
    "i32": np.array([7, -8, 9], dtype=np.int32),
    "bool": np.array([[True, False], [False, True]]),
    "scalar": np.array(2.5, dtype=np.float32),
    "empty": np.zeros((0, 3), dtype=np.float32),
}


def test_every_dtype_round_trips_bit_for_bit(tmp_path):
    path = st.save(tmp_path / "a.safetensors", ARRAYS, metadata={"format": "np", "note": "x"})
    back = st.load(path)
    assert list(back) == list(ARRAYS)
    for name, array in ARRAYS.items():
        assert back[name].dtype == array.dtype and back[name].shape == array.shape, name
        assert np.array_equal(back[name], array), name
        back[name][...] = back[name]  # loaded arrays are writable (a model may train them)
    assert st.load_metadata(path) == {"format": "np", "note": "x"}
    header_length = struct.unpack("<Q", path.read_bytes()[:8])[0]
    assert header_length % 8 == 0  # padded so the buffer starts aligned


def test_tensors_and_device_arrays_are_saved_by_value(tmp_path):
    t = ml.Tensor(np.ones((2, 2), dtype=np.float32), requires_grad=True)
    back = st.load(st.save(tmp_path / "t.safetensors", {"t": t, "d": ml.backend.to_device(np.arange(3), "fake")}))
    assert np.array_equal(back["t"], np.ones((2, 2))) and np.array_equal(back["d"], np.arange(3))


def test_bf16_is_read_as_float32_exactly(tmp_path):
    values = np.array([1.0, -2.5, 3.140625, 0.0, -0.0, np.inf, 2.0**120, 2.0**-130], dtype=np.float32)  # all exact in bf16
    bits = (values.view(np.uint32) >> 16).astype("<u2")
    craft(tmp_path / "b.safetensors", {"w": {"dtype": "BF16", "shape": [8], "data_offsets": [0, 16]}}, bits.tobytes())
    back = st.load(tmp_path / "b.safetensors")["w"]
    assert back.dtype == np.float32 and np.array_equal(back.view(np.uint32), values.view(np.uint32))


def test_saving_is_atomic_and_refuses_what_it_cannot_store(tmp_path):
    path = st.save(tmp_path / "a.safetensors", {"x": np.ones(2, dtype=np.float32)})
    before = path.read_bytes()
    with pytest.raises(TypeError, match=r"'u' has dtype uint8"):
        st.save(path, {"x": np.ones(2, dtype=np.float32), "u": np.ones(2, dtype=np.uint8)})
    with pytest.raises(ValueError, match="__metadata__"):
        st.save(path, {"__metadata__": np.ones(2)})
    with pytest.raises(TypeError, match="strings"):
        st.save(path, {"x": np.ones(2)}, metadata={"step": 3})
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]


# ----------------------------------------------------------------------------
# Malformed files: each one crafted by hand, each refused with what was wrong.

BAD = {
    "too short for the length": (lambda p: p.write_bytes(b"\x01\x02"), "too short"),
    "header length past the file": (lambda p: craft(p, {"x": f32((2,), 0)}, b"\0" * 8, length=500), "truncated"),
    "absurd header length": (lambda p: craft(p, b"{}", length=2**60), "more than"),
    "header not JSON": (lambda p: craft(p, b"{'x': 1}"), "not valid JSON"),
    "header not UTF-8": (lambda p: craft(p, b"\xff\xfe{}"), "not UTF-8"),
    "header a list": (lambda p: craft(p, b"[1, 2]"), "JSON object"),
    "duplicate name": (lambda p: craft(p, b'{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', b"\0" * 8), r"\['x'\] more than once"),
    "entry not an object": (lambda p: craft(p, {"x": [0, 4]}), "exactly dtype, shape and data_offsets"),
    "entry with a missing field": (lambda p: craft(p, {"x": {"dtype": "F32", "shape": [1]}}), "exactly dtype"),
    "unknown dtype": (lambda p: craft(p, {"x": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}, b"\0"), "F8_E4M3"),
    "negative dimension": (lambda p: craft(p, {"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4), "non-negative integers"),
    "offsets reversed": (lambda p: craft(p, {"x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"\0" * 4), "begin <= end"),
    "truncated buffer": (lambda p: craft(p, {"x": f32((4,), 0)}, b"\0" * 10), "ends at byte 16 .* only 10"),
    "offsets out of range": (lambda p: craft(p, {"x": f32((1,), 0), "y": f32((1,), 100)}, b"\0" * 8), "'y' ends at byte 104"),
    "shape against byte count": (lambda p: craft(p, {"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8), "needs 12 bytes but its offsets span 8"),
    "overlapping tensors": (lambda p: craft(p, {"x": f32((2,), 0), "y": f32((2,), 4)}, b"\0" * 12), "overlaps tensor 'x'"),
    "a hole in the buffer": (lambda p: craft(p, {"x": f32((1,), 0), "y": f32((1,), 8)}, b"\0" * 12), "bytes 4-8 .* no tensor"),
    "trailing bytes": (lambda p: craft(p, {"x": f32((1,), 0)}, b"\0" * 9), "5 bytes after its last tensor"),
    "metadata not strings": (lambda p: craft(p, {"__metadata__": {"step": 3}}), "object of strings"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_malformed_file_is_refused_with_its_reason(tmp_path, case):
    make, reason = BAD[case]
    path = tmp_path / "bad.safetensors"
    make(path)
    with pytest.raises(SafetensorsError, match=reason):
        st.load(path)


def test_the_crafted_files_are_well_formed_apart_from_their_fault(tmp_path):
    # The helpers above make readable files when nothing is wrong, so each refusal is its fault's.
    craft(tmp_path / "ok.safetensors", {"x": f32((2,), 0), "y": f32((1,), 8), "__metadata__": {"a": "b"}}, b"\0" * 12)
    back = st.load(tmp_path / "ok.safetensors")
    assert back["x"].shape == (2,) and back["y"].shape == (1,)


# ----------------------------------------------------------------------------
# The reference implementation, where it is installed.


def test_files_agree_with_the_safetensors_package(tmp_path):
    reference = pytest.importorskip("safetensors.numpy", reason="the safetensors package is not installed; the cross-check needs it")
    ours = st.save(tmp_path / "ours.safetensors", ARRAYS, metadata={"k": "v"})
    theirs = reference.load_file(str(ours))
    assert set(theirs) == set(ARRAYS)
    for name, array in ARRAYS.items():
        assert theirs[name].dtype == array.dtype and np.array_equal(theirs[name], array), name
    reference.save_file(ARRAYS, str(tmp_path / "theirs.safetensors"), metadata={"k": "v"})
    back = st.load(tmp_path / "theirs.safetensors")
    assert set(back) == set(ARRAYS) and st.load_metadata(tmp_path / "theirs.safetensors") == {"k": "v"}
    for name, array in ARRAYS.items():
        assert back[name].dtype == array.dtype and np.array_equal(back[name], array), name


def test_bf16_agrees_with_torch(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is not installed; the bfloat16 cross-check needs it")
    reference = pytest.importorskip("safetensors.torch", reason="the safetensors package is not installed")
    weights = torch.randn(5, 7, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    reference.save_file({"w": weights}, str(tmp_path / "bf16.safetensors"))
    back = st.load(tmp_path / "bf16.safetensors")["w"]
    assert back.dtype == np.float32 and np.array_equal(back, weights.float().numpy())
