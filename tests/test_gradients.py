"""The three basis gradients of the estimators (``gradient="alternating" | "implicit" |
"unrolled"``) and the amortised encoder (``encoder="amortized" | "warm_start"``).

* one ``learn_one`` step with ``gradient="implicit"`` is the step along central finite
  differences of the reconstruction loss through the exact code, 1/2||x - B w(B)||^2;
* one step with ``gradient="unrolled"`` is the step along :func:`streamsc.unrolled_vjp`'s
  gradient (itself checked against finite differences in ``test_unrolled.py``);
* the supervised unrolled step tends to the implicit one as T grows;
* the amortised encoder's codes approach the exact ones as it trains, its warm start does
  not change the exact codes, and a refused example leaves it untouched.
"""

import copy
import dataclasses
import math
import pickle

import numpy as np
import pandas as pd
import pytest

import streamsc
from streamsc import SparseCoder, SparseCodingClassifier, SparseCodingRegressor
from streamsc._kernels import unrolled as unrolled_kernels
from test_supervised import adagrad, expected_step, step_error

LAM = 0.1
EPS = 1e-6
M, K = 6, 8


def examples(n, seed, m=M):
    rng = np.random.default_rng(seed)
    return [dict(enumerate(rng.standard_normal(m) / math.sqrt(m))) for _ in range(n)]


def start_basis(seed=0, m=M, k=K):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((m, k))
    return B / np.linalg.norm(B, axis=0)


def exact_code(xv, B, prior, signed):
    return streamsc.encode(xv, B, prior=prior, lam=LAM, signed=signed, tol=1e-13)


CODERS = [("kl", False), ("kl", True), ("l1", False), ("l1", True)]
IDS = ["kl", "kl-signed", "l1", "l1-signed"]


@pytest.mark.parametrize("prior, signed", CODERS, ids=IDS)
def test_implicit_step_is_the_fd_step_of_the_reconstruction_through_the_code(prior, signed):
    B0 = start_basis()
    coder = SparseCoder(n_components=K, prior=prior, lam=LAM, p=1.0 / K, signed=signed,
                        tol=1e-12, learning_rate=0.3, gradient="implicit", basis=B0,
                        basis_update="sgd")  # the SGD step along the whole gradient
    x = examples(1, seed=4)[0]
    xv = np.array([x[i] for i in range(M)])

    def loss(B):
        r = xv - B @ exact_code(xv, B, prior, signed)
        return 0.5 * float(r @ r)

    if prior == "l1":  # finite differences need a code away from a change of active set
        w = exact_code(xv, B0, prior, signed)
        c = B0.T @ (xv - B0 @ w)
        slack = LAM - (np.abs(c) if signed else c)
        assert min(np.abs(w[w != 0]).min(), slack[w == 0].min()) > 1e-3
    G = np.zeros_like(B0)
    for i in range(M):
        for j in range(K):
            E = np.zeros_like(B0)
            E[i, j] = EPS
            G[i, j] = (loss(B0 + E) - loss(B0 - E)) / (2 * EPS)
    B_start = coder._learner.B.copy()
    np.testing.assert_allclose(B_start, B0, atol=1e-15)
    coder.learn_one(x)
    err = step_error(B0, coder._learner.B, expected_step(B0, adagrad(G, np.zeros(K), 0.3), 1.0))
    assert err < 1e-5, err


@pytest.mark.parametrize("prior, signed", CODERS, ids=IDS)
def test_unrolled_step_is_the_step_along_unrolled_vjp(prior, signed):
    B0 = start_basis(1)
    T = 12
    coder = SparseCoder(n_components=K, prior=prior, lam=LAM, p=1.0 / K, signed=signed,
                        learning_rate=0.3, gradient="unrolled", unrolled_steps=T, basis=B0)
    x = examples(1, seed=5)[0]
    xv = np.array([x[i] for i in range(M)])
    p = np.full(K, 1.0 / K)
    if prior == "kl":
        step = None  # unrolled_vjp's default: the same start and halving as the estimator
    else:  # the estimator's power iteration from a vector of ones
        step = 1.0 / unrolled_kernels.spectral_norm_sq(B0, np.ones(K), 50, 1e-6)
    w_T, G, _ = streamsc.unrolled_vjp(xv, B0, None, prior=prior, lam=LAM, p=p, signed=signed,
                                      n_steps=T, step=step, reconstruction_weight=1.0)
    coder.learn_one(x)
    err = step_error(B0, coder._learner.B, expected_step(B0, adagrad(G, np.zeros(K), 0.3), 1.0))
    assert err < 1e-10, err


@pytest.mark.parametrize("prior, signed", [("kl", False), ("l1", True)], ids=["kl", "l1-signed"])
def test_supervised_unrolled_step_tends_to_the_implicit_step(prior, signed):
    """Same model, same labelled example: the basis step with gradient="unrolled" approaches
    the implicit one as T grows (backprop term only: reconstruction_weight=0)."""
    base = SparseCodingClassifier(
        coder=SparseCoder(n_components=K, prior=prior, lam=LAM, signed=signed, tol=1e-12,
                          learning_rate=0.3, basis=start_basis(2)),
        gradient="alternating", reconstruction_weight=0.0, learning_rate=1.0,
    )
    data = examples(60, seed=6)
    for i, x in enumerate(data):  # train the head on the fixed basis
        base.learn_one(x, int(x[0] > 0))
    x, y = examples(1, seed=7)[0], 1

    def step(gradient, T=10):
        model = copy.deepcopy(base)
        model.gradient = gradient
        lr = model.coder_._learner
        lr.config = dataclasses.replace(lr.config, unrolled_steps=T)
        B0 = model.coder_._learner.B.copy()
        model.learn_one(x, y)
        return model.coder_._learner.B - B0

    want = step("implicit")
    assert np.abs(want).max() > 1e-4  # the label does move the basis
    errors = [float(np.abs(step("unrolled", T) - want).max() / np.abs(want).max())
              for T in (3, 30, 300, 3000)]
    assert errors[0] > 1e-2, errors  # the test can fail: short unrolls are far off
    assert all(b <= a * 1.01 for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-6, errors


@pytest.mark.parametrize("gradient", ["implicit", "unrolled"])
@pytest.mark.parametrize("prior", ["kl", "l1"])
def test_every_gradient_learns_a_planted_dictionary(gradient, prior):
    """The reconstruction error of held-out examples falls by a clear margin."""
    rng = np.random.default_rng(3)
    m, k = 12, 16
    B_true = rng.standard_normal((m, k))
    B_true /= np.linalg.norm(B_true, axis=0)

    def draw(n):
        W = np.zeros((n, k))
        for i in range(n):
            W[i, rng.choice(k, 2, replace=False)] = rng.uniform(0.5, 1.5, 2)
        return W @ B_true.T + 0.01 * rng.standard_normal((n, m))

    train, test = draw(3000), draw(200)
    coder = SparseCoder(n_components=k, prior=prior, lam=0.05, learning_rate=0.5,
                        gradient=gradient, unrolled_steps=20, seed=0)

    def held_out_error():
        B = coder._learner.B
        W = streamsc.encode(test, B, prior=prior, lam=0.05)
        return float(np.mean(np.sum((test - W @ B.T) ** 2, axis=1)))

    for x in train[:5]:
        coder.learn_one(dict(enumerate(x)))
    before = held_out_error()
    for x in train[5:]:
        coder.learn_one(dict(enumerate(x)))
    after = held_out_error()
    assert after < 0.5 * before, (before, after)


@pytest.mark.xfail(strict=True, reason=(
    "since the heads take constant normalised steps (river's convention; issue 18), the "
    "head's noise floor on this stationary toy (0.08-0.12 late error at learning_rate 0.01-0.5, "
    "alternating 0.084-0.117 vs unrolled 0.081-0.138) hides the unrolled backprop's gain, "
    "which the decaying 1/sqrt(n) head showed (0.021 vs 0.044)"))
def test_regressor_backprop_through_the_unrolled_solver_beats_no_backprop():
    """Progressive absolute error of a linear target of the features, last 100 of 2000
    examples: backprop through the unrolled solver learns, and better than the
    reconstruction-only basis (measured 0.021 unrolled, 0.018 implicit, 0.044 alternating,
    from 0.41-0.49 on the first 100, with the head on standardised codes)."""
    late = {}
    for gradient in ("alternating", "unrolled"):
        model = SparseCodingRegressor(
            coder=SparseCoder(n_components=K, signed=True, seed=0),
            gradient=gradient, learning_rate=0.5,
            raw_features=False,  # the target is linear in x: only the codes may carry it
        )
        errors = []
        for x in examples(2000, seed=8):
            y = 2.0 * x[0] - x[1]
            errors.append(abs(model.predict_one(x) - y))
            model.learn_one(x, y)
        assert np.isfinite(model.coder_._learner.B).all()
        late[gradient] = np.mean(errors[-100:])
        assert late[gradient] < 0.4 * np.mean(errors[:100])
    assert late["unrolled"] < 0.8 * late["alternating"], late


# ---------------------------------------------------------------------------------------
# the amortised encoder


def planted_stream(n, seed=0, m=16, k=24):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((m, k))
    B /= np.linalg.norm(B, axis=0)
    out = []
    for _ in range(n):
        w = np.zeros(k)
        w[rng.choice(k, 3, replace=False)] = rng.uniform(0.5, 1.5, 3)
        out.append(dict(enumerate(B @ w + 0.01 * rng.standard_normal(m))))
    return out


@pytest.mark.parametrize("prior", ["kl", "l1"])
def test_amortized_codes_approach_the_exact_codes(prior):
    data = planted_stream(2500)
    held_out = planted_stream(100, seed=1)
    coder = SparseCoder(n_components=24, prior=prior, lam=0.05, encoder="amortized",
                        learning_rate=0.05, seed=0)

    def relative_error():
        B = coder._learner.B
        X = np.array([[x[i] for i in range(16)] for x in held_out])
        exact = streamsc.encode(X, B, prior=prior, lam=0.05, p=coder._learner.config.p)
        approx = np.array([list(coder.transform_one(x).values()) for x in held_out])
        return float(np.linalg.norm(approx - exact) / np.linalg.norm(exact))

    for x in data[:20]:
        coder.learn_one(x)
    early = relative_error()
    for x in data[20:]:
        coder.learn_one(x)
    late = relative_error()
    # measured: KL 0.51 -> 0.32, L1 0.68 -> 0.48 (the basis keeps moving under the encoder)
    assert late < 0.8 * early, (early, late)
    frame = pd.DataFrame(held_out)
    np.testing.assert_allclose(coder.transform_many(frame).to_numpy(),
                               [list(coder.transform_one(x).values()) for x in held_out],
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("prior", ["kl", "l1"])
def test_warm_start_encoder_gives_the_exact_codes(prior):
    data = planted_stream(400)
    coder = SparseCoder(n_components=24, prior=prior, lam=0.05, encoder="warm_start",
                        learning_rate=0.05, seed=0)
    for x in data:
        coder.learn_one(x)
    B = coder._learner.B
    probe = planted_stream(30, seed=2)
    X = np.array([[x[i] for i in range(16)] for x in probe])
    exact = streamsc.encode(X, B, prior=prior, lam=0.05, tol=1e-12,
                            p=coder._learner.config.p)
    got = np.array([list(coder.transform_one(x).values()) for x in probe])
    many = coder.transform_many(pd.DataFrame(probe)).to_numpy()
    scale = np.abs(exact).max()
    assert np.abs(got - exact).max() < 1e-5 * scale
    assert np.abs(many - exact).max() < 1e-5 * scale


def test_refused_example_leaves_the_encoder_untouched():
    coder = SparseCoder(n_components=6, encoder="amortized", seed=0)
    for x in examples(30, seed=9):
        coder.learn_one(x)
    before = pickle.dumps(coder)
    with pytest.raises(ValueError, match="too large"):
        coder.learn_one({0: 1e200, 1: -1e200, "new": 1.0})  # grows, then refuses
    assert pickle.dumps(coder) == before
    with pytest.raises(ValueError, match="'new'"):
        coder.learn_one({0: 0.1, "new": float("nan")})
    assert pickle.dumps(coder) == before
    clone = pickle.loads(before)
    x = examples(1, seed=10)[0]
    assert clone.transform_one(x) == coder.transform_one(x)


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"gradient": "newton"}, "gradient must be one of"),
        ({"encoder": "lista"}, "encoder must be one of"),
        ({"unrolled_steps": 0}, "unrolled_steps must be >= 1"),
        ({"gradient": "unrolled", "loss": "kl"}, "gradient='unrolled' needs loss='squared'"),
        ({"gradient": "unrolled", "encoder": "amortized"}, "does not compute"),
    ],
)
def test_bad_gradient_and_encoder_parameters(params, fragment):
    with pytest.raises(ValueError, match=fragment):
        SparseCoder(**params)
