"""streamsc._base: the shared estimator base. Its registry (the classes a model file may
name), its transactional step (every refused learning call leaves the whole model as it
was), and no import cycle among streamsc's modules (lazy imports included)."""

import ast
import pathlib

import numpy as np
import pandas as pd
import pytest

import streamsc
from streamsc import SparseCoder, SparseCodingClassifier, SparseCodingRegressor, _base
from streamsc.sklearn import SparseCodingTransformer

PACKAGE = pathlib.Path(streamsc.__file__).parent


def _state(obj):
    """The whole state as plain values (arrays by dtype, shape and bytes)."""
    if isinstance(obj, np.ndarray):
        return ("ndarray", obj.dtype.str, obj.shape, obj.tobytes())
    if isinstance(obj, dict):
        return ("dict", [(_state(k), _state(v)) for k, v in obj.items()])
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [_state(v) for v in obj])
    if isinstance(obj, (str, bytes, bool, int, float, type(None), np.generic)):
        return (type(obj).__name__, repr(obj))
    if isinstance(obj, pd.DataFrame):
        return ("DataFrame", _state(obj.to_numpy()))
    if hasattr(obj, "__dict__"):
        return (type(obj).__qualname__, _state(vars(obj)))
    raise TypeError(type(obj).__name__)


def _stream(n=30, seed=0):
    rng = np.random.default_rng(seed)
    return [dict(zip("abcd", rng.normal(size=4).tolist())) for _ in range(n)]


def _trained_coder(**kw):
    coder = SparseCoder(n_components=3, seed=0, **kw)
    for x in _stream():
        coder.learn_one(x)
    return coder


# --- the registry


def test_every_estimator_is_registered_by_its_class_name():
    classes = _base.registered_classes()
    for cls in (SparseCoder, SparseCodingClassifier, SparseCodingRegressor,
                SparseCodingTransformer):
        assert issubclass(cls, _base.StreamscEstimator)
        assert classes[cls.__name__] is cls
        assert cls.__name__ in _base.ESTIMATORS
    coder = _trained_coder(encoder="amortized")
    for obj in (coder._features, coder._learner, coder._learner.config,
                coder._learner.encoder):
        assert classes[type(obj).__name__] is type(obj)


def test_save_is_the_bases(tmp_path):
    for cls in (SparseCoder, SparseCodingClassifier, SparseCodingRegressor,
                SparseCodingTransformer):
        assert cls.save is _base.StreamscEstimator.save
    model = SparseCodingTransformer(n_components=2, random_state=0).fit(np.eye(3))
    model.save(tmp_path / "t.streamsc")
    assert np.array_equal(streamsc.load(tmp_path / "t.streamsc").components_,
                          model.components_)


# --- the transactional step


class Boom(Exception):
    pass


def test_shallow_transaction_puts_every_attribute_back():
    coder = _trained_coder()
    before = _state(coder)
    B = coder._learner.B
    with pytest.raises(Boom), coder._transaction():
        coder._learner.B = np.zeros_like(B)
        coder._learner.t += 5
        coder._features.names = ["x"]
        coder.new_attribute_ = 1
        raise Boom
    assert coder._learner.B is B
    assert not hasattr(coder, "new_attribute_")
    assert _state(coder) == before


def test_deep_transaction_undoes_in_place_changes_and_keeps_identities():
    given = SparseCoder(n_components=3, seed=0)
    model = SparseCodingClassifier(coder=given)
    for i, x in enumerate(_stream()):
        model.learn_one(x, i % 2)
    before = _state(model)
    with pytest.raises(Boom), model._transaction(deep=True):
        model.coder_._learner.B[:] = 0.0
        model._V[:] = 1.0
        model.classes_.append(7)
        model.coder_._features.index["zz"] = 99
        raise Boom
    assert model.coder is given and model.coder_ is given
    assert _state(model) == before


def test_transaction_keeps_changes_without_an_exception():
    coder = _trained_coder()
    with coder._transaction(deep=True):
        coder._learner.t = 12345
    assert coder._learner.t == 12345


def _failing_after(monkeypatch, cls, name, n):
    """Make ``cls.name`` raise Boom on its (n+1)-th call."""
    original = getattr(cls, name)
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) > n:
            raise Boom
        return original(*args, **kwargs)

    monkeypatch.setattr(cls, name, wrapper)


@pytest.mark.parametrize("case", ["coder-learn_one", "coder-learn_many", "mini_batch",
                                  "classifier-learn_one", "classifier-learn_many",
                                  "regressor-learn_many", "sklearn-partial_fit",
                                  "sklearn-first-partial_fit", "sklearn-fit"])
def test_a_refused_call_leaves_the_model_unchanged(case, monkeypatch):
    Learner = type(SparseCoder(n_components=2, seed=0)._learner)
    new = {"a": 1.0, "b": 2.0, "new_feature": 0.5}
    frame = pd.DataFrame(_stream(6, seed=1) + [new]).fillna(0.0)
    if case.startswith("coder") or case == "mini_batch":
        model = _trained_coder(mini_batch=case == "mini_batch")
    elif case.startswith("classifier"):
        model = SparseCodingClassifier(n_components=3, seed=0, gradient="implicit")
        for i, x in enumerate(_stream()):
            model.learn_one(x, i % 2)
    elif case.startswith("regressor"):
        model = SparseCodingRegressor(n_components=3, seed=0)
        for i, x in enumerate(_stream()):
            model.learn_one(x, float(i))
    else:
        model = SparseCodingTransformer(n_components=3, random_state=0)
        if case != "sklearn-first-partial_fit":
            model.partial_fit(np.random.default_rng(0).normal(size=(20, 4)))
    before = _state(model)
    X = np.random.default_rng(1).normal(size=(10, 4))
    with pytest.raises(Boom):
        if case == "coder-learn_one":
            _failing_after(monkeypatch, Learner, "learn", 0)
            model.learn_one(new)  # grows the basis first, then fails
        elif case == "coder-learn_many":
            _failing_after(monkeypatch, Learner, "learn", 3)
            model.learn_many(frame)
        elif case == "mini_batch":
            _failing_after(monkeypatch, Learner, "learn_batch", 0)
            model.learn_many(frame)
        elif case == "classifier-learn_one":
            _failing_after(monkeypatch, type(model), "_basis_step", 0)
            model.learn_one(new, 5)  # a new feature and a new class
        elif case in ("classifier-learn_many", "regressor-learn_many"):
            _failing_after(monkeypatch, type(model), "learn_one", 4)
            model.learn_many(frame, pd.Series(range(len(frame))))
        elif case == "sklearn-fit":  # five columns: fit would reset n_features_in_
            _failing_after(monkeypatch, Learner, "learn", 5)
            model.fit(np.random.default_rng(1).normal(size=(10, 5)))
        else:
            _failing_after(monkeypatch, Learner, "learn", 5)
            model.partial_fit(X)
    assert _state(model) == before


# --- no import cycles


def _imports(path, module):
    """The streamsc modules ``module`` (file ``path``) imports, at any depth of its code."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("streamsc")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("streamsc"):
                continue
            for alias in node.names:  # "from . import x": x may be a submodule
                sub = f"{target}.{alias.name}"
                out.add(sub if _module_file(sub) is not None else target)
    return out - {module}


def _module_file(name):
    rel = pathlib.Path(*name.split(".")[1:])
    for candidate in (PACKAGE / rel.with_suffix(".py"), PACKAGE / rel / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _graph():
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        graph[name] = _imports(path, name)
    return graph


def test_no_import_cycles_among_streamsc_modules():
    graph = _graph()
    state = {}

    def visit(name, stack):
        state[name] = "open"
        for dep in sorted(graph.get(name, ())):
            if dep == "streamsc":  # the package itself is always imported first
                continue
            if state.get(dep) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack + [name, dep]))
            if dep not in state:
                visit(dep, stack + [name])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_persistence_knows_only_the_base():
    graph = _graph()
    assert graph["streamsc.persistence"] <= {"streamsc._base", "streamsc._codec",
                                             "streamsc._model_file"}
    assert graph["streamsc._model_file"] == {"streamsc._codec"}
    assert graph["streamsc._codec"] == set()
    for name, deps in graph.items():
        assert "streamsc.persistence" not in deps, name
