"""Persistence: ``save``/``streamsc.load`` (and pickle) resume a stream bit-identically
(every array of the whole state byte-equal to the uninterrupted run's) for every estimator
and a river pipeline; a model file is JSON plus arrays, and a crafted file (a pickle, an
unknown class, an object array) is refused without running its code; bad files raise
``ValueError`` naming the file and the problem; an unwritable numba cache is fine."""

import hashlib
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import threading
import zipfile

import numpy as np
import pandas as pd
import pytest
from river import compose, linear_model, preprocessing

import streamsc
from streamsc import SparseCoder, SparseCodingClassifier, SparseCodingRegressor, persistence
from streamsc import _model_file
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


def _docs():
    """Bags of words (counts), for the KL loss."""
    words = ["cat", "dog", "rain", "wind", "cold", "play", "my"]
    rng = np.random.default_rng(3)
    out = []
    for i in range(N):
        theme = words[:3] if i % 2 else words[2:6]
        doc = {w: int(rng.integers(1, 4)) for w in rng.choice(theme + ["my"], size=3)}
        out.append((doc, i % 2, float(i % 5)))
    return out


def _odd_keys(stream):
    """Feature names of other types than str: ints, a tuple, a bool-free float."""
    names = {"a": 0, "b": ("t", 1), "c": "c", "d": 2.5, "e": -3}
    return [({names[k]: v for k, v in x.items()}, y, t) for x, y, t in stream]


def _coder_kl():
    return SparseCoder(n_components=6, signed=True, lam=0.05, seed=0)


def _coder_l1():
    return SparseCoder(n_components=6, prior="l1", signed=True, lam=0.05, seed=1)


_LABELS = {"u": 0, "v": 1, "w": 2}

MODELS = {
    "coder-kl": (_coder_kl, lambda m, x, y, t: m.learn_one(x), _stream),
    "coder-l1": (_coder_l1, lambda m, x, y, t: m.learn_one(x), _stream),
    "coder-kl-unsigned-odd-keys": (lambda: SparseCoder(n_components=4, seed=2),
                                   lambda m, x, y, t: m.learn_one(x),
                                   lambda: _odd_keys(_stream())),
    "coder-text": (lambda: SparseCoder(n_components=3, loss="kl", seed=0),
                   lambda m, x, y, t: m.learn_one(x), _docs),
    "coder-amortized": (
        lambda: SparseCoder(n_components=4, gradient="implicit", encoder="amortized", seed=0),
        lambda m, x, y, t: m.learn_one(x), _stream),
    "coder-unrolled": (
        lambda: SparseCoder(n_components=4, prior="l1", lam=0.05, gradient="unrolled", seed=0),
        lambda m, x, y, t: m.learn_one(x), _stream),
    "classifier-backprop": (
        lambda: SparseCodingClassifier(coder=_coder_kl(), gradient="implicit", learning_rate=0.5),
        lambda m, x, y, t: m.learn_one(x, y), _stream,
    ),
    "classifier-int-labels-semi-supervised": (
        lambda: SparseCodingClassifier(n_components=4, seed=0),
        lambda m, x, y, t: (m.learn_one(x, _LABELS[y]) if t > 0 else m.learn_unlabelled_one(x)),
        _stream,
    ),
    "classifier-bool-labels-text": (
        lambda: SparseCodingClassifier(n_components=3, loss="kl", seed=0, gradient="implicit"),
        lambda m, x, y, t: m.learn_one(x, bool(y)), _docs,
    ),
    "classifier-float-labels": (
        lambda: SparseCodingClassifier(n_components=3, seed=0),
        lambda m, x, y, t: m.learn_one(x, float(_LABELS[y]) + 0.5), _stream,
    ),
    "regressor-backprop": (
        lambda: SparseCodingRegressor(coder=_coder_kl(), gradient="implicit"),
        lambda m, x, y, t: m.learn_one(x, t), _stream,
    ),
    "regressor-unrolled": (
        lambda: SparseCodingRegressor(n_components=4, prior="l1", lam=0.05, seed=0,
                                      gradient="unrolled"),
        lambda m, x, y, t: m.learn_one(x, t), _stream,
    ),
    "pipeline-classifier": (
        lambda: preprocessing.StandardScaler() | SparseCodingClassifier(seed=0),
        lambda m, x, y, t: m.learn_one(x, y), _stream,
    ),
    "pipeline-regressor-union": (
        lambda: (preprocessing.StandardScaler()
                 | compose.TransformerUnion(SparseCoder(n_components=3, seed=0),
                                            preprocessing.MinMaxScaler())
                 | linear_model.LinearRegression()),
        lambda m, x, y, t: m.learn_one(x, t), _stream,
    ),
    "pipeline-logistic": (
        lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        lambda m, x, y, t: m.learn_one(x, y == "u"), _stream,
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
        return (type(obj).__name__, [(_state(k), _state(v)) for k, v in obj.items()],
                _state(getattr(obj, "default_factory", None)))
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [_state(v) for v in obj])
    if isinstance(obj, (set, frozenset)):
        return (type(obj).__name__, sorted(repr(_state(v)) for v in obj))
    if isinstance(obj, (str, bytes, bool, int, float, type(None), np.generic, type)):
        return (type(obj).__name__, repr(obj))
    if isinstance(obj, pd.DataFrame):
        return ("DataFrame", _state(obj.to_numpy()), list(obj.index), list(obj.columns))
    if isinstance(obj, np.random.RandomState):
        return ("RandomState", _state(obj.get_state(legacy=False)))
    if type(obj).__name__ == "VectorDict":
        return ("VectorDict", _state(obj.to_dict()))
    if hasattr(obj, "__dict__"):
        return (type(obj).__qualname__, _state(vars(obj)))
    raise TypeError(f"no state rule for {type(obj).__name__}")


def _predict(model, x):
    for method in ("predict_proba_one", "predict_one", "transform_one"):
        if hasattr(model, method):
            try:
                return getattr(model, method)(x)
            except (NotImplementedError, AttributeError):
                continue
    raise AssertionError(model)


def _coders(model):
    """Every SparseCoder in a model."""
    if type(model) is SparseCoder:
        return [model]
    if type(model) in (SparseCodingClassifier, SparseCodingRegressor):
        return [model.coder_]
    out = []
    for step in getattr(model, "steps", {}).values():
        out += _coders(step)
    for step in getattr(model, "transformers", {}).values():
        out += _coders(step)
    return out


def _arrays(model):
    """The learned arrays of a model: the bases and the heads."""
    out = [coder._learner.B for coder in _coders(model)]
    if type(model) is SparseCodingClassifier:
        out += [model._V, model._b]
    if type(model) is SparseCodingRegressor:
        out += [model._v, np.array([model._b, model._y_mean, model._y_m2])]
    return out


def _check_same(resumed, straight, x):
    assert type(resumed) is type(straight)
    for a, b in zip(_arrays(resumed), _arrays(straight), strict=True):
        assert np.array_equal(a, b)
    assert _state(resumed) == _state(straight)
    assert pickle.dumps(_state(resumed)) == pickle.dumps(_state(straight))
    assert _predict(resumed, x) == _predict(straight, x)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("how", ["save", "pickle"])
def test_resume_mid_stream_is_bit_identical(name, how, tmp_path):
    make, learn, data = MODELS[name]
    stream = data()
    straight = make()
    for x, y, t in stream:
        learn(straight, x, y, t)

    model = make()
    for x, y, t in stream[:HALF]:
        learn(model, x, y, t)
    if how == "save":
        path = tmp_path / "model.streamsc"
        if isinstance(model, streamsc._base.StreamscEstimator):
            model.save(path)
        else:
            streamsc.save(model, path)
        resumed = streamsc.load(path)
    else:
        resumed = pickle.loads(pickle.dumps(model))
    del model
    for x, y, t in stream[HALF:]:
        learn(resumed, x, y, t)
    _check_same(resumed, straight, stream[0][0])


_FRESH_LOAD = """
import sys, streamsc
assert "streamsc.sklearn" not in sys.modules and "streamsc.regressor" not in sys.modules
for path in sys.argv[1:]:
    print(type(streamsc.load(path)).__name__)
"""


def test_a_fresh_process_loads_every_kind_of_model(tmp_path):
    """load imports the estimators' modules from the base's table (nothing imported yet)."""
    pipeline = preprocessing.MinMaxScaler() | SparseCodingRegressor(n_components=2, seed=0)
    for i in range(10):
        pipeline.learn_one({"a": float(i), "b": 1.0 / (i + 1)}, float(i))
    streamsc.save(pipeline, tmp_path / "p.streamsc")
    SparseCodingTransformer(n_components=2, random_state=0).fit(np.eye(3)).save(
        tmp_path / "t.streamsc")
    proc = subprocess.run(
        [sys.executable, "-c", _FRESH_LOAD, str(tmp_path / "p.streamsc"),
         str(tmp_path / "t.streamsc")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["Pipeline", "SparseCodingTransformer"]


def test_pipeline_steps_stay_the_objects_its_plan_runs(tmp_path):
    make, learn, data = MODELS["pipeline-classifier"]
    model = make()
    for x, y, t in data()[:10]:
        learn(model, x, y, t)
    streamsc.save(model, tmp_path / "p.streamsc")
    again = streamsc.load(tmp_path / "p.streamsc")
    assert isinstance(again, compose.Pipeline)
    steps = list(again.steps.values())
    assert again._last_step_cached is steps[-1]
    assert again._plan[0][1] is steps[0]


@pytest.mark.parametrize("mini_batch", [True, False])
def test_learn_many_resumes_bit_identically(mini_batch, tmp_path):
    stream = [x for x, _, _ in _stream()]
    frames = [pd.DataFrame(stream[i:i + 20]).fillna(0.0) for i in range(0, N, 20)]

    def make():
        return SparseCoder(n_components=4, mini_batch=mini_batch, seed=0)

    straight = make()
    for X in frames:
        straight.learn_many(X)
    model = make()
    for X in frames[:3]:
        model.learn_many(X)
    model.save(tmp_path / "m.streamsc")
    resumed = streamsc.load(tmp_path / "m.streamsc")
    for X in frames[3:]:
        resumed.learn_many(X)
    _check_same(resumed, straight, stream[0])
    assert resumed.transform_many(frames[0]).equals(straight.transform_many(frames[0]))


def test_given_basis_frame_and_coder_round_trip(tmp_path):
    """A basis= DataFrame parameter, and coder= (the same object as coder_) survive."""
    rng = np.random.default_rng(0)
    basis = pd.DataFrame(rng.normal(size=(3, 2)), index=["a", 7, ("t", 1)],
                         columns=["atom_0", "atom_1"])
    coder = SparseCoder(n_components=2, basis=basis, seed=0)
    model = SparseCodingRegressor(coder=coder)
    model.learn_one({"a": 1.0, 7: 0.5}, 1.0)
    model.save(tmp_path / "r.streamsc")
    again = streamsc.load(tmp_path / "r.streamsc")
    assert again.coder is again.coder_
    assert again.coder.basis.equals(basis)
    assert list(again.coder.basis.index) == ["a", 7, ("t", 1)]
    assert again.coder_.basis_.equals(model.coder_.basis_)


@pytest.mark.parametrize("random_state", [0, "RandomState", None])
def test_sklearn_transformer_resumes_bit_identically(random_state, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 5))

    def make():
        rs = np.random.RandomState(5) if random_state == "RandomState" else random_state
        return SparseCodingTransformer(n_components=4, prior="l1", signed=True, lam=0.05,
                                       random_state=rs)

    model = make().partial_fit(X[:40])
    straight = pickle.loads(pickle.dumps(model)).partial_fit(X[40:])
    persistence.save(model, tmp_path / "t.streamsc")
    resumed = streamsc.load(tmp_path / "t.streamsc").partial_fit(X[40:])
    assert np.array_equal(resumed.components_, straight.components_)
    assert np.array_equal(resumed.transform(X[:5]), straight.transform(X[:5]))
    assert _state(resumed) == _state(straight)
    if random_state == "RandomState":  # the parameter's RNG state, too
        assert resumed.random_state.randint(1000) == straight.random_state.randint(1000)
        again = streamsc.load(tmp_path / "t.streamsc")
        assert again.random_state.get_state()[1].tolist() == \
            model.random_state.get_state()[1].tolist()


def test_sklearn_transformer_fitted_on_a_dataframe(tmp_path):
    """feature_names_in_ is an array of Python objects (str): saved element by element."""
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(30, 3)), columns=["a", "b", "c"])
    model = SparseCodingTransformer(n_components=2, random_state=0).fit(X)
    model.save(tmp_path / "t.streamsc")
    again = streamsc.load(tmp_path / "t.streamsc")
    assert again.feature_names_in_.dtype == object
    assert again.feature_names_in_.tolist() == ["a", "b", "c"]
    assert np.array_equal(again.transform(X), model.transform(X))
    with pytest.raises(ValueError, match="feature names"):
        again.transform(X.rename(columns={"a": "z"}))


def test_numpy_generator_and_odd_values_round_trip(tmp_path):
    """Plain values of every kind the encoder knows come back equal and of the same type."""
    coder = SparseCoder(n_components=2, seed=0)
    gen = np.random.default_rng(7)
    gen.normal(size=3)
    values = {
        "gen": gen, "nan": float("nan"), "inf": -float("inf"), "negzero": -0.0, "big": 2**100,
        "np": (np.float32(1.5), np.int64(-3), np.bool_(True)), "bytes": b"\x00\xff",
        "set": {1, "a"}, "frozen": frozenset([("x", 2)]), "keys": {1: "a", "1": "b", 1.5: None,
                                                                   (1, "a"): True, None: 0},
    }
    coder.extra_ = values
    coder.extra_again_ = values  # the same dict: kept one object
    coder.save(tmp_path / "c.streamsc")
    again = streamsc.load(tmp_path / "c.streamsc").extra_
    assert streamsc.load(tmp_path / "c.streamsc").extra_again_ is not None
    assert again["gen"].normal() == gen.normal()
    assert np.isnan(again["nan"]) and again["inf"] == -float("inf")
    assert str(again["negzero"]) == "-0.0" and again["big"] == 2**100
    assert [type(v) for v in again["np"]] == [np.float32, np.int64, np.bool_]
    assert again["bytes"] == b"\x00\xff" and again["set"] == {1, "a"}
    assert again["frozen"] == frozenset([("x", 2)])
    assert list(again["keys"].items()) == list(values["keys"].items())
    assert [type(k) for k in again["keys"]] == [int, str, float, tuple, type(None)]
    loaded = streamsc.load(tmp_path / "c.streamsc")
    assert loaded.extra_ is loaded.extra_again_


@pytest.mark.parametrize("bad", ["lambda", "object", "object-array", "partial-factory"])
def test_save_refuses_unknown_types_and_writes_nothing(bad, tmp_path):
    import collections
    import functools

    coder = SparseCoder(n_components=2, seed=0)
    coder.learn_one({"a": 1.0})
    coder.extra_ = {
        "lambda": lambda: 1,
        "object": object(),
        "object-array": np.array([object(), 1], dtype=object),
        "partial-factory": collections.defaultdict(functools.partial(float, 1)),
    }[bad]
    with pytest.raises(TypeError, match=r"cannot save model\.extra_"):
        coder.save(tmp_path / "c.streamsc")
    assert os.listdir(tmp_path) == []


def test_a_river_step_with_a_function_is_refused(tmp_path):
    model = compose.FuncTransformer(lambda x: x) | SparseCoder(n_components=2, seed=0)
    with pytest.raises(TypeError, match="cannot save .*function"):
        streamsc.save(model, tmp_path / "p.streamsc")
    assert os.listdir(tmp_path) == []


def test_file_is_json_and_arrays(tmp_path):
    model = SparseCodingClassifier(n_components=3, seed=0)
    for x, y, _ in _stream()[:10]:
        model.learn_one(x, y)
    model.save(tmp_path / "m.streamsc")
    data = (tmp_path / "m.streamsc").read_bytes()
    payload = data[_header_len(data):]
    with zipfile.ZipFile(io.BytesIO(payload)) as zf:
        names = zf.namelist()
        document = json.loads(zf.read("model.json"))
        arrays = [np.load(io.BytesIO(zf.read(n)), allow_pickle=False) for n in names[1:]]
    assert names[0] == "model.json" and all(n.endswith(".npy") for n in names[1:])
    assert document["format"] == "streamsc-model"
    assert document["class"] == "SparseCodingClassifier"
    assert {"SparseCodingClassifier", "SparseCoder", "Learner", "Features", "Config"} \
        <= set(document["classes"])
    assert len(arrays) == document["n_arrays"] > 0
    assert b"pickle" not in data.lower()


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
    with pytest.raises(ValueError, match=r"model\.streamsc.* format version 3, newer .*upgrade"):
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


def _file(payload, fmt=persistence.FORMAT_VERSION, version=b"0.1.0"):
    """A well-formed header and checksum around ``payload``."""
    return (persistence.MAGIC + struct.pack(">IH", fmt, len(version)) + version
            + struct.pack(">Q32s", len(payload), hashlib.sha256(payload).digest()) + payload)


class _Evil:
    """Unpickling it would create a marker file: a load that runs code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _document(state, classes=("SparseCoder",), top="SparseCoder", n_arrays=0):
    return {"format": "streamsc-model", "class": top, "streamsc_version": "0.1.0",
            "classes": list(classes), "n_arrays": n_arrays, "state": state}


def test_a_pickle_payload_is_refused_and_runs_no_code(tmp_path):
    marker = tmp_path / "marker"
    payload = pickle.dumps(_Evil(marker))
    for fmt in (1, persistence.FORMAT_VERSION):
        path = _write(tmp_path / f"evil{fmt}.streamsc", _file(payload, fmt=fmt))
        with pytest.raises(ValueError, match=r"evil\d\.streamsc"):
            streamsc.load(path)
        assert not marker.exists()
    with pytest.raises(ValueError, match=r"format version 1 .*a pickle.*allow_pickle=True"):
        streamsc.load(tmp_path / "evil1.streamsc")
    with pytest.raises(ValueError, match=r"is corrupt: its payload is not a model archive"):
        streamsc.load(tmp_path / "evil2.streamsc")
    assert not marker.exists()


def test_an_object_array_in_the_archive_is_refused_and_runs_no_code(tmp_path):
    marker = tmp_path / "marker"
    evil = io.BytesIO()
    np.save(evil, np.array([_Evil(marker)], dtype=object), allow_pickle=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("model.json", json.dumps(_document({"$": "ndarray", "id": 0, "a": 0},
                                                       n_arrays=1)))
        zf.writestr("arrays/0.npy", evil.getvalue())
    path = _write(tmp_path / "obj.streamsc", _file(buf.getvalue()))
    with pytest.raises(ValueError, match=r"obj\.streamsc.* is corrupt: its arrays/0\.npy is not "
                                         r"a plain array"):
        streamsc.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("node, message", [
    ({"$": "object", "class": "Popen", "id": 0, "state": {}}, "unknown class"),
    ({"$": "river", "module": "os", "qualname": "system", "id": 0, "state": {}},
     "not in river's namespace"),
    ({"$": "river", "module": "river.compose", "qualname": "__builtins__", "id": 0,
      "state": {}}, "bad class name"),
    ({"$": "river", "module": "river.utils", "qualname": "expand_param_grid", "id": 0, "state": {}},
     "not a river estimator class"),
    ({"$": "pickle", "v": "gASV"}, "unknown node kind"),
    ({"$": "dict", "kind": "defaultdict", "factory": {"$": "builtin", "name": "eval"},
      "id": 0, "items": []}, "unknown defaultdict factory"),
    ({"$": "ref", "id": 5}, "undefined object"),
])
def test_a_crafted_document_is_refused(tmp_path, node, message):
    payload = _model_file.payload(_document(node, classes=[]), [])
    path = _write(tmp_path / "crafted.streamsc", _file(payload))
    with pytest.raises(ValueError, match=rf"crafted\.streamsc.* is corrupt: .*{message}"):
        streamsc.load(path)


def test_a_deeply_nested_document_is_refused(tmp_path):
    text = json.dumps(_document(None, classes=[]))  # nested by hand: json.dumps would recurse
    text = text.replace('"state": null', '"state": ' + '{"$": "tuple", "v": [' * 100_000
                        + '"leaf"' + "]}" * 100_000)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("model.json", text)
    path = _write(tmp_path / "deep.streamsc", _file(buf.getvalue()))
    with pytest.raises(ValueError, match=r"deep\.streamsc.* is corrupt"):
        streamsc.load(path)


def test_an_unknown_class_name_is_refused(tmp_path):
    payload = _model_file.payload(_document({"$": "object", "class": "Evil", "id": 0, "state": {}},
                                       classes=["Evil"], top="Evil"), [])
    path = _write(tmp_path / "unknown.streamsc", _file(payload))
    with pytest.raises(ValueError, match=r"unknown\.streamsc.* names the unknown class.*'Evil'"):
        streamsc.load(path)


def test_valid_file_holding_something_else(tmp_path):
    """A well-formed file around a document of a plain dict, not a model."""
    node = {"$": "dict", "kind": "dict", "id": 0, "items": [["not", "a model"]]}
    path = _write(tmp_path / "dict.streamsc", _file(_model_file.payload(_document(node), [])))
    with pytest.raises(ValueError,
                       match=r"dict\.streamsc.* does not hold a streamsc model .*dict"):
        streamsc.load(path)


def test_old_pickle_files_load_only_with_allow_pickle(tmp_path):
    model = _coder_kl()
    for x, _, _ in _stream()[:10]:
        model.learn_one(x)
    path = _write(tmp_path / "old.streamsc", _file(pickle.dumps(model, protocol=5), fmt=1))
    with pytest.raises(ValueError, match=r"old\.streamsc.* format version 1"):
        streamsc.load(path)
    again = streamsc.load(path, allow_pickle=True)
    assert _state(again) == _state(model)
    _write(path, _file(pickle.dumps({"a": 1}), fmt=1))
    with pytest.raises(ValueError, match=r"does not hold a streamsc model"):
        streamsc.load(path, allow_pickle=True)
    _write(path, _file(b"\x80\x05garbage", fmt=1))
    with pytest.raises(ValueError, match=r"is corrupt: its payload does not unpickle"):
        streamsc.load(path, allow_pickle=True)


def test_old_pickle_files_name_the_classes_where_they_were(tmp_path):
    """Format-1 files name ``streamsc._online.Learner``, ``.Config`` and ``.Features``
    (since moved to ``_learner``, ``_params`` and ``_features``): they still load."""
    model = _coder_kl()
    for x, _, _ in _stream()[:10]:
        model.learn_one(x)
    # protocol 2 names a global as text, "c<module>\n<name>\n" (no frames to resize)
    old = pickle.dumps(model, protocol=2)
    for module, name in (("streamsc._learner", "Learner"), ("streamsc._params", "Config"),
                         ("streamsc._features", "Features")):
        now = f"c{module}\n{name}\n".encode()
        assert now in old
        old = old.replace(now, f"cstreamsc._online\n{name}\n".encode())
    assert b"streamsc._online" in old and b"streamsc._learner" not in old
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(old)
    path = _write(tmp_path / "old.streamsc", _file(old, fmt=1))
    again = streamsc.load(path, allow_pickle=True)
    assert _state(again) == _state(model)


def test_payload_that_is_not_an_archive(tmp_path):
    path = _write(tmp_path / "bad.streamsc", _file(b"PK\x03\x04garbage"))
    with pytest.raises(ValueError, match=r"bad\.streamsc.* is corrupt: its payload is not a model"):
        streamsc.load(path)


def test_save_rejects_other_objects(tmp_path):
    with pytest.raises(TypeError, match="model must be a streamsc estimator .*got dict"):
        persistence.save({}, tmp_path / "x")
    with pytest.raises(TypeError, match="model must be a streamsc estimator .*got StandardScaler"):
        persistence.save(preprocessing.StandardScaler(), tmp_path / "x")
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


KILLED_SAVE = """
import os, sys, time
import numpy as np
from streamsc import SparseCoder, save

coder = SparseCoder(n_components=2, seed=0)
coder.learn_one({"a": 1.0, "b": 2.0})
os.fsync = lambda fd: time.sleep(120)  # hang mid-save, the temporary written
save(coder, sys.argv[1])
"""


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX")
def test_a_save_killed_midway_leaves_a_temporary_the_next_save_removes(tmp_path):
    """SIGKILL mid-save cannot clean up; the next save to that path removes the temporary
    the dead process left (its pid is in the name), and keeps those of live processes."""
    import signal
    import time

    path = tmp_path / "model.sc"
    live = tmp_path / f".model.sc.{os.getpid()}.abcd.tmp"  # this process: "another thread"
    live.write_bytes(b"")
    child = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(path)])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            stale = [p for p in tmp_path.iterdir() if p.name.startswith(f".model.sc.{child.pid}.")]
            if stale and stale[0].stat().st_size > 0:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the child never wrote its temporary")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert stale[0].exists() and not path.exists()
    coder = SparseCoder(n_components=2, seed=0)
    coder.learn_one({"a": 1.0, "b": 2.0})
    streamsc.save(coder, path)
    assert not stale[0].exists()
    assert live.exists()  # a live process's temporary is never touched
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model.sc", live.name])
    assert streamsc.load(path).n_components == 2
