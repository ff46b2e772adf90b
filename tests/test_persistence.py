"""Persistence: ``save``/``streamsc.load`` (and pickle) resume a stream bit-identically
(every array of the whole state byte-equal to the uninterrupted run's); bad files raise
``ValueError`` naming the file and the problem; an unwritable numba cache is fine."""

import hashlib
import os
import pickle
import struct
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import streamsc
from streamsc import SparseCoder, SparseCodingClassifier, SparseCodingRegressor, persistence
from streamsc.sklearn import SparseCodingTransformer

N, HALF = 120, 60


def _stream(seed=0):
    """A small stream of (x, class label, target) over five features, some missing."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(N):
        x = rng.normal(size=5) * 0.5
        c = int(rng.integers(3))
        x[c] += 1.0
        d = dict(zip("abcde", x.tolist()))
        if i % 7 == 3:
            del d["e"]
        out.append((d, ["u", "v", "w"][c], float(x[0] - 2 * x[1])))
    return out


def _coder_kl():
    return SparseCoder(n_components=6, signed=True, lam=0.05, seed=0)


def _coder_l1():
    return SparseCoder(n_components=6, prior="l1", signed=True, lam=0.05, seed=1)


MODELS = {
    "coder-kl": (_coder_kl, lambda m, x, y, t: m.learn_one(x)),
    "coder-l1": (_coder_l1, lambda m, x, y, t: m.learn_one(x)),
    "classifier-backprop": (
        lambda: SparseCodingClassifier(coder=_coder_kl(), gradient="implicit", learning_rate=0.5),
        lambda m, x, y, t: m.learn_one(x, y),
    ),
    "regressor-backprop": (
        lambda: SparseCodingRegressor(coder=_coder_kl(), gradient="implicit"),
        lambda m, x, y, t: m.learn_one(x, t),
    ),
}


def _state(obj):
    """The complete state of a model as a tree of plain values (every array as its dtype,
    shape and bytes), for an exact comparison. Raw pickle bytes of two equal states can
    differ in their memo (object identity: e.g. an unpickled array carries its own dtype
    instance where a fresh one uses numpy's shared one), never in a value."""
    if isinstance(obj, np.ndarray):
        return ("ndarray", obj.dtype.str, obj.shape, obj.tobytes())
    if isinstance(obj, dict):
        return ("dict", [(_state(k), _state(v)) for k, v in obj.items()])
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [_state(v) for v in obj])
    if isinstance(obj, (str, bytes, bool, int, float, type(None), np.generic)):
        return (type(obj).__name__, repr(obj))
    if hasattr(obj, "__dict__"):
        return (type(obj).__qualname__, _state(vars(obj)))
    raise TypeError(f"no state rule for {type(obj).__name__}")


def _arrays(model):
    """The learned arrays of a model: the basis and the head."""
    coder = model if isinstance(model, SparseCoder) else model.coder_
    out = [coder._learner.B]
    if isinstance(model, SparseCodingClassifier):
        out += [model._V, model._b]
    if isinstance(model, SparseCodingRegressor):
        out += [model._v, np.array([model._b, model._y_mean, model._y_m2])]
    return out


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("how", ["save", "pickle"])
def test_resume_mid_stream_is_bit_identical(name, how, tmp_path):
    make, learn = MODELS[name]
    stream = _stream()
    straight = make()
    for x, y, t in stream:
        learn(straight, x, y, t)

    model = make()
    for x, y, t in stream[:HALF]:
        learn(model, x, y, t)
    if how == "save":
        path = tmp_path / "model.streamsc"
        model.save(path)
        resumed = streamsc.load(path)
    else:
        resumed = pickle.loads(pickle.dumps(model))
    del model
    for x, y, t in stream[HALF:]:
        learn(resumed, x, y, t)

    for a, b in zip(_arrays(resumed), _arrays(straight), strict=True):
        assert np.array_equal(a, b)
    assert _state(resumed) == _state(straight)
    assert pickle.dumps(_state(resumed)) == pickle.dumps(_state(straight))
    x = stream[0][0]
    if isinstance(straight, SparseCoder):
        assert resumed.transform_one(x) == straight.transform_one(x)
    elif isinstance(straight, SparseCodingClassifier):
        assert resumed.predict_proba_one(x) == straight.predict_proba_one(x)
    else:
        assert resumed.predict_one(x) == straight.predict_one(x)


def test_sklearn_transformer_resumes_bit_identically(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 5))
    kw = dict(n_components=4, prior="l1", signed=True, lam=0.05, random_state=0)
    straight = SparseCodingTransformer(**kw).partial_fit(X)
    model = SparseCodingTransformer(**kw).partial_fit(X[:40])
    persistence.save(model, tmp_path / "t.streamsc")
    resumed = streamsc.load(tmp_path / "t.streamsc").partial_fit(X[40:])
    assert np.array_equal(resumed.components_, straight.components_)
    assert np.array_equal(resumed.transform(X[:5]), straight.transform(X[:5]))
    assert _state(resumed) == _state(straight)


@pytest.fixture
def saved(tmp_path):
    model = SparseCodingClassifier(coder=_coder_kl())
    for x, y, _ in _stream()[:10]:
        model.learn_one(x, y)
    path = tmp_path / "model.streamsc"
    model.save(path)
    return path, path.read_bytes()


def _write(path, data):
    path.write_bytes(data)
    return path


def _header_len(data):
    n_version = struct.unpack(">H", data[12:14])[0]
    return 14 + n_version + 40


@pytest.mark.parametrize("cut", ["header", "payload", "last-byte"])
def test_truncated_file(saved, cut):
    path, data = saved
    end = {"header": 10, "payload": _header_len(data) + 20, "last-byte": len(data) - 1}[cut]
    _write(path, data[:end])
    with pytest.raises(ValueError, match=r"model\.streamsc.* is truncated"):
        streamsc.load(path)


def test_corrupt_payload(saved):
    path, data = saved
    flipped = bytearray(data)
    flipped[-5] ^= 0xFF
    _write(path, bytes(flipped))
    with pytest.raises(ValueError, match=r"model\.streamsc.* is corrupt.*SHA-256"):
        streamsc.load(path)
    _write(path, data + b"extra")
    with pytest.raises(ValueError, match=r"is corrupt"):
        streamsc.load(path)


def test_newer_format_version(saved):
    path, data = saved
    newer = data[:8] + struct.pack(">I", persistence.FORMAT_VERSION + 1) + data[12:]
    _write(path, newer)
    with pytest.raises(ValueError, match=r"model\.streamsc.* format version 2, newer .*upgrade"):
        streamsc.load(path)


@pytest.mark.parametrize("content", ["random", "empty", "plain-pickle", "text"])
def test_not_a_streamsc_file(tmp_path, content):
    data = {
        "random": np.random.default_rng(0).bytes(500),
        "empty": b"",
        "plain-pickle": pickle.dumps(_coder_kl()),  # a model, but not in the file format
        "text": b"hello world\n",
    }[content]
    path = _write(tmp_path / "other.bin", data)
    with pytest.raises(ValueError, match=r"other\.bin.* is not a streamsc model file"):
        streamsc.load(path)


def test_valid_file_holding_something_else(tmp_path):
    """A well-formed header and checksum around a pickle of a non-streamsc object."""
    payload = pickle.dumps({"not": "a model"})
    version = b"0.1.0"
    data = (persistence.MAGIC + struct.pack(">IH", 1, len(version)) + version
            + struct.pack(">Q32s", len(payload), hashlib.sha256(payload).digest()) + payload)
    path = _write(tmp_path / "dict.streamsc", data)
    with pytest.raises(ValueError,
                       match=r"dict\.streamsc.* does not hold a streamsc model .*dict"):
        streamsc.load(path)


def test_payload_that_does_not_unpickle(tmp_path):
    payload = b"\x80\x05garbage"
    data = (persistence.MAGIC + struct.pack(">IH", 1, 1) + b"0"
            + struct.pack(">Q32s", len(payload), hashlib.sha256(payload).digest()) + payload)
    path = _write(tmp_path / "bad.streamsc", data)
    with pytest.raises(ValueError,
                       match=r"bad\.streamsc.* is corrupt: its payload does not unpickle"):
        streamsc.load(path)


def test_save_rejects_other_objects(tmp_path):
    with pytest.raises(TypeError, match="model must be a streamsc estimator, got dict"):
        persistence.save({}, tmp_path / "x")
    assert not os.listdir(tmp_path)


def test_header_records_versions(saved):
    _, data = saved
    assert data.startswith(b"STREAMSC")
    fmt, n = struct.unpack(">IH", data[8:14])
    assert fmt == persistence.FORMAT_VERSION
    assert data[14:14 + n].decode() == streamsc.__version__
    assert len(data) == _header_len(data) + struct.unpack(">Q", data[14 + n:22 + n])[0]


def test_save_overwrites_and_leaves_no_temporary(saved):
    path, data = saved
    SparseCoder(n_components=2, seed=0).save(path)
    assert isinstance(streamsc.load(path), SparseCoder)
    assert os.listdir(path.parent) == [path.name]


_NUMBA_SCRIPT = """
import streamsc
coder = streamsc.SparseCoder(n_components=3, seed=0)
for i in range(5):
    coder.learn_one({"a": 1.0 + i, "b": -0.5, "c": 0.25 * i})
code = coder.transform_one({"a": 1.0, "b": 0.5})
assert len(code) == 3 and all(v == v for v in code.values()), code
print("ok")
"""


def test_unwritable_numba_cache_dir():
    """numba's cache directory cannot be written: importing and using streamsc still works.
    chmod 0o555 makes a directory read-only for a normal user; root ignores it (as on CI), so
    there the cache path is put under a regular file, where no directory can be created."""
    with tempfile.TemporaryDirectory() as tmp:
        ro = os.path.join(tmp, "readonly")
        os.mkdir(ro)
        os.chmod(ro, 0o555)
        try:
            probe = os.path.join(ro, "probe")
            try:
                with open(probe, "w"):
                    pass
            except OSError:
                cache_dir = ro  # really read-only
            else:  # root: permissions are not enforced
                os.remove(probe)
                blocker = os.path.join(tmp, "a_file")
                with open(blocker, "w") as f:
                    f.write("not a directory")
                cache_dir = os.path.join(blocker, "numba_cache")
            env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
            proc = subprocess.run([sys.executable, "-c", _NUMBA_SCRIPT], env=env,
                                  capture_output=True, text=True, timeout=600)
        finally:
            os.chmod(ro, 0o755)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("ok")


def test_three_threads_saving_one_path_never_fail_and_leave_no_temporaries(tmp_path):
    import threading

    model = _coder_kl()
    for x, _, _ in _stream()[:20]:
        model.learn_one(x)
    path = tmp_path / "model.streamsc"
    failures = []

    def work():
        for _ in range(20):
            try:
                persistence.save(model, path)
            except Exception as exc:  # counted below
                failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert failures == []
    assert sorted(os.listdir(tmp_path)) == ["model.streamsc"]
    assert streamsc.load(path).basis_.equals(model.basis_)


def test_save_through_a_symlink_writes_its_target(tmp_path):
    model = _coder_kl()
    model.learn_one({"a": 1.0, "b": 0.5})
    target = tmp_path / "real.streamsc"
    target.write_bytes(b"old")
    link = tmp_path / "link.streamsc"
    os.symlink(target, link)
    persistence.save(model, link)
    assert os.path.islink(link) and os.path.realpath(link) == os.path.realpath(target)
    assert streamsc.load(target).basis_.equals(model.basis_)
    assert sorted(os.listdir(tmp_path)) == ["link.streamsc", "real.streamsc"]
