"""SparseCoder, the river estimator: it learns a planted dictionary, each learn_one is the
paper's step (against a NumPy twin), it is deterministic, order-free, cached, and rejects bad
input without changing state."""

import copy
import inspect
import math
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linear_sum_assignment

import streamsc
import streamsc._atoms as atom_rules
import streamsc._basis_steps as basis_steps
import streamsc._learner as learner
import naive
from streamsc import SparseCoder

# ---------------------------------------------------------------------------------------
# helpers


def planted(m=32, k=48, n=20000, n_active=3, noise=0.01, seed=0):
    """A random unit-norm basis B* (m, k) and n examples x = B* w + noise, each w with
    ``n_active`` non-zero coefficients drawn from U(0.5, 1.5)."""
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((m, k))
    B /= np.linalg.norm(B, axis=0)
    W = np.zeros((n, k))
    for i in range(n):
        W[i, rng.choice(k, n_active, replace=False)] = rng.uniform(0.5, 1.5, n_active)
    X = W @ B.T + noise * rng.standard_normal((n, m))
    return B, X


def matched_fraction(B_true, B_learned, threshold=0.95):
    """Fraction of the true atoms matched (Hungarian matching on |cos|) to a learned atom
    with |cos| >= threshold; both bases have unit-norm columns."""
    C = np.abs(B_true.T @ B_learned)
    r, c = linear_sum_assignment(-C)
    return float(np.mean(C[r, c] >= threshold))


def stream(n=300, m=5, seed=0, names="abcdefgh"):
    """Unit-scale examples over m named features."""
    _, X = planted(m=m, k=2 * m, n=n, n_active=2, noise=0.05, seed=seed)
    return [dict(zip(names[:m], row)) for row in X.tolist()]


def learned(n=200, **params):
    params = {"n_components": 6, "seed": 3, **params}
    model = SparseCoder(**params)
    for x in stream(n):
        model.learn_one(x)
    return model


def count_solves(monkeypatch):
    calls = []
    original = learner.solve

    def spy(X, B, **kw):
        calls.append(kw.get("init"))
        return original(X, B, **kw)

    monkeypatch.setattr(learner, "solve", spy)
    return calls


# ---------------------------------------------------------------------------------------
# the paper's experiment in miniature: recover a planted dictionary


PLANTED = {
    "kl": dict(prior="kl"),
    "l1": dict(prior="l1"),
}


@pytest.mark.parametrize("params", list(PLANTED.values()), ids=list(PLANTED))
def test_planted_dictionary_is_recovered(params):
    """20k examples of a random 32 x 48 unit-norm basis with 3 non-negative coefficients
    each, streamed once through learn_one with the defaults: >= 90% of the atoms are
    found with |cos| >= 0.95, and the reconstruction loss falls over the stream."""
    B_true, X = planted()
    model = SparseCoder(n_components=48, seed=1, **params)
    losses = []
    learn = model._learner.learn

    def recording(rows, x):
        code, loss = learn(rows, x)
        losses.append(loss)
        return code, loss

    model._learner.learn = recording  # an instance attribute: sees every step's loss
    for row in X.tolist():
        model.learn_one(dict(enumerate(row)))
    assert len(losses) == X.shape[0] == 20000

    B = model.basis_.loc[list(range(32))].to_numpy()
    np.testing.assert_allclose(np.linalg.norm(B, axis=0), 1.0, atol=1e-12)
    assert matched_fraction(B_true, B) >= 0.9
    first, last = np.mean(losses[:1000]), np.mean(losses[-1000:])
    assert last < 0.75 * first


# ---------------------------------------------------------------------------------------
# one step is the surrogate's step, or AdaGrad's


def _past_initial_atoms(model, xs):
    """Learn until every atom has been set from data; returns the examples left."""
    k = model.n_components
    i = 0
    while model._learner.n_data_atoms < k:
        model.learn_one(xs[i])
        i += 1
    return xs[i:]


@pytest.mark.parametrize("prior", ["kl", "l1", "l2"])
def test_each_learn_one_is_the_surrogate_step(prior, monkeypatch):
    """The first distinct examples become the atoms; after that, every learn_one adds the
    example to A = sum c_t w w^T and S = sum c_t x w^T (c_t = t + T0 k) and updates the atoms
    after every k-th example, moves every atom by one pass of block-coordinate descent on
    the surrogate: the basis equals naive.surrogate_step's from the previous basis, with
    the code learn_one used (transform_one's, cached), which is streamsc.encode's, and
    between passes it does not move."""
    monkeypatch.setattr(atom_rules, "REPLACE_AFTER", 10**9)  # no replacement in this short run
    model = SparseCoder(n_components=7, prior=prior, seed=0)
    xs = stream(60)
    first = xs[0]
    x0 = np.array([first[name] for name in sorted(first)])
    model.learn_one(first)
    np.testing.assert_allclose(model.basis_.to_numpy()[:, 0], x0 / np.linalg.norm(x0))
    xs = _past_initial_atoms(model, xs[1:])
    k, lr = 7, model._learner
    lam, p = lr.config.lam, lr.config.p  # lam calibrated on the first k examples
    A = np.zeros((k, k))
    S = np.zeros((len(model.basis_), k))
    sweeps = 0
    for x in xs:
        B = model.basis_.to_numpy()
        x_vec = np.array([x[name] for name in model.basis_.index])
        w = np.array(list(model.transform_one(x).values()))
        np.testing.assert_allclose(w, streamsc.encode(x_vec, B, prior=prior, lam=lam, p=p),
                                   rtol=1e-4, atol=1e-6)
        c = lr.seen + basis_steps.SURROGATE_T0 * k
        A += c * np.outer(w, w)
        S += c * np.outer(x_vec, w)
        sweep = (lr.seen + 1) % k == 0
        model.learn_one(x)
        expected = naive.surrogate_step(B, A, S, list(range(k))) if sweep else B
        np.testing.assert_allclose(model.basis_.to_numpy(), expected, rtol=0, atol=1e-9)
        sweeps += sweep
    assert sweeps >= 5


@pytest.mark.parametrize("prior", ["kl", "l1"])
def test_each_sgd_learn_one_is_the_adagrad_step(prior, monkeypatch):
    """basis_update="sgd": every learn_one (after the atoms from data) is eq. 7's gradient
    (B w - x) w^T with the per-atom AdaGrad step learning_rate / sqrt(G_j)."""
    monkeypatch.setattr(atom_rules, "REPLACE_AFTER", 10**9)
    model = SparseCoder(n_components=6, prior=prior, basis_update="sgd", seed=0)
    xs = _past_initial_atoms(model, stream(60))
    G = np.zeros(6)
    for x in xs:
        B = model.basis_.to_numpy()
        x_vec = np.array([x[name] for name in model.basis_.index])
        w = np.array(list(model.transform_one(x).values()))
        model.learn_one(x)
        expected, G = naive.adagrad_step(B, B @ w - x_vec, w, G, model.learning_rate)
        np.testing.assert_allclose(model.basis_.to_numpy(), expected, rtol=0, atol=1e-12)


def test_missing_features_are_unobserved_not_zero():
    """An example without feature 'c' is coded on the other rows, and learning from it is
    learning from the same example with 'c' imputed by its reconstruction (B w)_c: the
    missing value adds nothing to the surrogate's statistics, it is not read as a zero.
    (The step compared is one that ends a block of k examples, so the atoms move.)"""
    model = learned(50)
    for extra in stream(10, seed=5):
        if (model._learner.seen + 1) % model.n_components == 0:
            break
        model.learn_one(extra)
    zero = copy.deepcopy(model)
    B = model.basis_
    x = {"a": 0.3, "b": -0.2, "d": 0.5, "e": 0.1}
    observed = ["a", "b", "d", "e"]
    B_obs = B.loc[observed].to_numpy()
    x_vec = np.array([x[name] for name in observed])
    cfg = model._learner.config
    w = streamsc.encode(x_vec, B_obs, prior="kl", lam=cfg.lam, p=cfg.p, tol=1e-12)
    np.testing.assert_allclose(list(model.transform_one(x).values()), w, rtol=1e-5, atol=1e-8)
    imputed = copy.deepcopy(model)
    model.learn_one(x)
    imputed.learn_one({**x, "c": float(B.loc["c"].to_numpy() @ w)})
    np.testing.assert_allclose(model.basis_.to_numpy(), imputed.basis_.to_numpy(), atol=1e-6)
    zero.learn_one({**x, "c": 0.0})
    assert np.abs(zero.basis_.to_numpy() - model.basis_.to_numpy()).max() > 1e-4


# ---------------------------------------------------------------------------------------
# determinism and order


def test_same_seed_gives_bit_identical_basis_and_codes():
    a, b = learned(300, seed=11), learned(300, seed=11)
    assert np.array_equal(a.basis_.to_numpy(), b.basis_.to_numpy())
    x = stream(1, seed=9)[0]
    assert a.transform_one(x) == b.transform_one(x)
    # the seed draws the rows of features that appear after the atoms were set from data
    c = learned(300, seed=12)
    late = {**x, "z": 0.5}
    a.learn_one(late)
    c.learn_one(late)
    assert not np.array_equal(a.basis_.loc["z"].to_numpy(), c.basis_.loc["z"].to_numpy())


def test_unseeded_models_differ():
    a, b = learned(5, seed=None), learned(5, seed=None)
    assert not np.array_equal(a.basis_.to_numpy(), b.basis_.to_numpy())


def test_key_order_and_arrival_order_do_not_matter():
    """Shuffled dict keys, and features first seen in a different order, give the
    bit-identical basis: rows live in a canonical order and a new row depends on
    (seed, name) only."""
    xs = stream(100)
    rng = np.random.default_rng(0)
    a, b = SparseCoder(n_components=4, seed=5), SparseCoder(n_components=4, seed=5)
    # a meets features a, b first; b meets them in reverse order and c..e first
    a.learn_one({"a": 0.1, "b": 0.2})
    b.learn_one({"b": 0.2, "a": 0.1})
    for x in xs:
        keys = list(x)
        rng.shuffle(keys)
        a.learn_one(x)
        b.learn_one({key: x[key] for key in keys})
    assert list(a.basis_.index) == ["a", "b", "c", "d", "e"]
    assert np.array_equal(a.basis_.to_numpy(), b.basis_.to_numpy())

    first, second = SparseCoder(n_components=4, seed=5), SparseCoder(n_components=4, seed=5)
    first.learn_one({"a": 1.0, "b": 1.0, "c": 1.0})
    second.learn_one({"c": 1.0, "b": 1.0, "a": 1.0})
    assert np.array_equal(first.basis_.to_numpy(), second.basis_.to_numpy())


def test_mixed_key_types_have_a_canonical_order():
    model = SparseCoder(n_components=2, seed=0)
    model.learn_one({"z": 1.0, 10: 1.0, 2: 1.0, ("t", 1): 1.0, 2.5: 1.0, "a": 1.0})
    assert list(model.basis_.index) == [2, 2.5, 10, "a", "z", ("t", 1)]


def test_learn_many_equals_looped_learn_one():
    """Same codes, same steps, as features emerge and disappear between batches."""
    xs = stream(120)
    subsets = [["a", "b"], ["a", "b", "c", "d", "e"], ["c", "d", "e"], ["e"], list("abcde")]
    one = SparseCoder(n_components=5, prior="l1", lam=0.05, seed=2)
    many = SparseCoder(n_components=5, prior="l1", lam=0.05, seed=2)
    for i, cols in enumerate(subsets):
        batch = [{c: x[c] for c in cols} for x in xs[24 * i: 24 * (i + 1)]]
        for x in batch:
            one.learn_one(x)
        many.learn_many(pd.DataFrame(batch, columns=cols))
        np.testing.assert_allclose(many.basis_.to_numpy(), one.basis_.to_numpy(),
                                   rtol=0, atol=1e-8)
    assert list(many.basis_.index) == list(one.basis_.index)
    for x in xs[:10]:
        a, b = one.transform_one(x), many.transform_one(x)
        np.testing.assert_allclose(list(a.values()), list(b.values()), rtol=0, atol=1e-8)


def test_transform_many_matches_transform_one():
    model = learned(100)
    xs = stream(20, seed=4)
    frame = pd.DataFrame(xs, index=range(100, 120))
    frame["never_seen"] = 1.0
    out = model.transform_many(frame)
    assert list(out.columns) == [f"atom_{j}" for j in range(6)]
    assert list(out.index) == list(frame.index)
    for i, x in enumerate(xs):
        np.testing.assert_allclose(out.iloc[i].to_numpy(), list(model.transform_one(x).values()),
                                   rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------------------------
# feature-key policy


def test_transform_before_learning_and_unknown_keys():
    model = SparseCoder(n_components=3, seed=0)
    assert model.transform_one({"a": 1.0}) == {"atom_0": 0.0, "atom_1": 0.0, "atom_2": 0.0}
    assert model.basis_.shape == (0, 3)
    model = learned(50)
    x = stream(1, seed=7)[0]
    assert model.transform_one({**x, "new": 5.0}) == model.transform_one(x)
    assert "new" not in model.basis_.index  # transforming never grows the basis
    assert set(model.transform_one({"new": 5.0}).values()) == {0.0}


def test_empty_example_is_a_no_op():
    model = learned(20)
    before = pickle.dumps(model)
    model.learn_one({})
    assert pickle.dumps(model) == before


def test_basis_frame():
    model = learned(30)
    basis = model.basis_
    assert isinstance(basis, pd.DataFrame)
    assert basis.shape == (5, 6)
    assert list(basis.index) == list("abcde")
    assert list(basis.columns) == [f"atom_{j}" for j in range(6)]
    np.testing.assert_allclose(np.linalg.norm(basis.to_numpy(), axis=0), 1.0, atol=1e-12)
    basis.iloc[0, 0] = 99.0  # a copy: the model is untouched
    assert model.basis_.iloc[0, 0] != 99.0


# ---------------------------------------------------------------------------------------
# bad input: a clear error and the state byte-identical


NAN = float("nan")
BAD_INPUTS = [
    ("learn_one", {"a": NAN, "b": 1.0}, ValueError, "'a'"),
    ("learn_one", {"a": 1.0, "b": float("inf")}, ValueError, "'b'"),
    ("learn_one", {"a": -float("inf")}, ValueError, "'a'"),
    ("learn_one", {"a": "1.5"}, TypeError, "'a'"),
    ("learn_one", {"a": None}, TypeError, "'a'"),
    ("learn_one", {"a": 1 + 2j}, TypeError, "'a'"),
    ("learn_one", {"a": np.array([1.0, 2.0])}, TypeError, "'a'"),
    ("learn_one", {"new": [1.0]}, TypeError, "'new'"),
    ("learn_one", [0.1, 0.2], TypeError, "dict"),
    ("learn_one", None, TypeError, "dict"),
    ("learn_one", pd.Series({"a": 1.0}), TypeError, "dict"),
    ("learn_one", {"a": 1e200, "b": -1e200}, ValueError, "too large"),
    ("transform_one", {"a": NAN}, ValueError, "'a'"),
    ("transform_one", {"a": "x"}, TypeError, "'a'"),
    ("transform_one", (1.0, 2.0), TypeError, "dict"),
    ("learn_many", np.ones((3, 5)), TypeError, "DataFrame"),
    ("learn_many", pd.DataFrame({"a": [1.0, NAN], "new": [1.0, 2.0]}), ValueError, "'a'"),
    ("learn_many", pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}), TypeError, "'b'"),
    ("learn_many", pd.DataFrame([[1.0, 2.0]], columns=["a", "a"]), ValueError, "duplicate"),
    ("learn_many", pd.DataFrame({"z": [1.0, 2.0], "b": [np.inf, 0.0]}), ValueError, "'b'"),
    ("transform_many", pd.DataFrame({"a": [NAN]}), ValueError, "'a'"),
    ("transform_many", [{"a": 1.0}], TypeError, "DataFrame"),
]


@pytest.mark.parametrize(
    "method, bad, error, fragment", BAD_INPUTS,
    ids=[f"{i}-{case[0]}" for i, case in enumerate(BAD_INPUTS)],
)
def test_bad_input_raises_and_leaves_state_unchanged(method, bad, error, fragment):
    model = learned(30)
    model.transform_one(stream(1, seed=5)[0])  # a non-empty cache
    before = pickle.dumps(model)
    with pytest.raises(error, match=fragment):
        getattr(model, method)(bad)
    assert pickle.dumps(model) == before


@pytest.mark.parametrize(
    "params, error, fragment",
    [
        ({"n_components": 0}, ValueError, "n_components"),
        ({"n_components": 2.5}, TypeError, "n_components"),
        ({"prior": "l0"}, ValueError, "prior"),
        ({"lam": 0.0}, ValueError, "lam"),
        ({"lam": -1.0}, ValueError, "lam"),
        ({"lam": "big"}, TypeError, "lam"),
        ({"p": 0.0}, ValueError, "p"),
        ({"p": [0.1, 0.2]}, ValueError, "p"),
        ({"signed": "yes"}, TypeError, "signed"),
        ({"learning_rate": 0.0}, ValueError, "learning_rate"),
        ({"learning_rate": float("nan")}, ValueError, "learning_rate"),
        ({"tol": "auto"}, ValueError, "tol"),
        ({"tol": -1e-3}, ValueError, "tol"),
        ({"solver": "lbfgs"}, ValueError, "solver"),
        ({"max_iter": 0}, ValueError, "max_iter"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 1.5}, TypeError, "seed"),
    ],
)
def test_bad_parameters(params, error, fragment):
    with pytest.raises(error, match=fragment):
        SparseCoder(n_components=params.pop("n_components", 4), **params)


def test_parameter_constraints_cover_init():
    names = set(inspect.signature(SparseCoder).parameters)
    assert set(SparseCoder._parameter_constraints) == names


# ---------------------------------------------------------------------------------------
# the cache


def test_cache_avoids_solving_the_same_problem_twice(monkeypatch):
    model = learned(30)  # 30 = 6 k: the next learn_one adds to the statistics only
    calls = count_solves(monkeypatch)
    y = stream(1, seed=7)[0]
    model.transform_one(y)
    model.learn_one(y)
    model.transform_one(y)  # the basis did not move: the cached code is exact
    assert len(calls) == 1
    for z in stream(4, seed=6):  # to the end of the block of k: the next step moves B
        model.learn_one(z)
    assert (model._learner.seen + 1) % model.n_components == 0
    calls.clear()
    x = stream(1, seed=8)[0]

    first = model.transform_one(x)
    assert len(calls) == 1 and calls[0] is None  # cold: nothing cached for this x
    assert model.transform_one(dict(reversed(list(x.items())))) == first
    assert len(calls) == 1  # same values, same basis: no solve

    model.learn_one(x)  # reuses the cached code for its step
    assert len(calls) == 1
    second = model.transform_one(x)
    assert len(calls) == 2  # the basis moved: solve again, warm-started
    np.testing.assert_array_equal(calls[1][0], list(first.values()))
    assert second != first

    model.transform_one({**x, "a": x["a"] + 1e-3})  # a different example: cold
    assert len(calls) == 3 and calls[2] is None


def test_learn_one_right_after_learn_one_warm_starts(monkeypatch):
    model = learned(35)  # the next learn_one ends a block of k = 6: it moves the basis
    calls = count_solves(monkeypatch)
    x = stream(1, seed=8)[0]
    model.learn_one(x)
    model.learn_one(x)
    assert len(calls) == 2 and calls[0] is None and calls[1] is not None
    model.learn_one(x)  # the basis did not move: the cached code, no solve
    assert len(calls) == 2


# ---------------------------------------------------------------------------------------
# persistence


def test_pickle_deepcopy_clone_round_trips():
    model = learned(100)
    xs = stream(20, seed=6)
    expected = [model.transform_one(x) for x in xs]
    for other in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert [other.transform_one(x) for x in xs] == expected
        other.learn_one(xs[0])
        model_copy = pickle.loads(pickle.dumps(model))
        model_copy.learn_one(xs[0])
        assert np.array_equal(other.basis_.to_numpy(), model_copy.basis_.to_numpy())
    clone = model.clone()
    assert clone.basis_.shape == (0, 6)
    assert repr(clone) == repr(model)
    assert np.array_equal(learned(100).basis_.to_numpy(), model.basis_.to_numpy())
    for x in stream(100):
        clone.learn_one(x)
    assert np.array_equal(clone.basis_.to_numpy(), learned(100).basis_.to_numpy())


def test_no_numba_objects_on_the_estimator():
    model = learned(10)
    for value in vars(model).values():
        assert "numba" not in type(value).__module__


def test_kernels_compile_lazily():
    code = (
        "import streamsc\n"
        "from streamsc._kernels import dictionary as d\n"
        "print(sum(len(f.signatures) for f in (d.squared_residual, d.sgd_update, "
        "d.normalise_columns)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "0"


@pytest.mark.parametrize("mini_batch", [False, True], ids=["learn_one", "mini_batch"])
def test_a_given_basis_is_refined_not_refitted(mini_batch):
    """A coder given the planted basis (``basis=``) keeps it while its first examples of the
    same distribution arrive: the surrogate's statistics start from a prior that holds the
    given basis, so each atom moves a little instead of all the way to the residual of the
    few examples that used it (from zero statistics, an atom's first block-coordinate step
    fits those examples). 120 examples: before the first check for unused atoms, which
    may replace one (with 2 atoms per example some atom may not have been used yet)."""
    from streamsc.synthetic import planted_dictionary

    m, k = 32, 64
    B_true, X = planted_dictionary(m, k, 120, sparsity=2, signed=False, seed=3)
    names = [f"x{i}" for i in range(m)]
    frame = pd.DataFrame(B_true, index=names, columns=[f"atom_{j}" for j in range(k)])
    coder = SparseCoder(n_components=k, prior="l1", seed=0, basis=frame,
                        mini_batch=mini_batch)
    chunk = 20 if mini_batch else len(X)
    for start in range(0, len(X), chunk):
        coder.learn_many(pd.DataFrame(X[start:start + chunk], columns=names))
    B = coder.basis_.loc[names].to_numpy()
    cos = np.abs(np.sum(B * B_true, axis=0))  # atom j is still atom j
    assert cos.min() > 0.99, cos.min()  # from zero statistics: 0.90 (learn_one), 0.16
