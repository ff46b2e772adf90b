"""``SparseCoder(mini_batch=True)``: ``learn_many`` codes a frame in parallel and takes one
basis step (the surrogate's, or an averaged AdaGrad eq. 7 step); ``n_threads`` changes no
bit of the result."""

import pickle

import numpy as np
import pandas as pd
import pytest

import streamsc
import streamsc._basis_steps as basis_steps
from streamsc import SparseCoder
from streamsc._kernels.dictionary import normalise_columns

import naive


def planted(n, seed=0, m=12, k=16, noise=0.01):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((m, k))
    B /= np.linalg.norm(B, axis=0)
    W = np.zeros((n, k))
    for i in range(n):
        W[i, rng.choice(k, 2, replace=False)] = rng.uniform(0.5, 1.5, 2)
    return pd.DataFrame(W @ B.T + noise * rng.standard_normal((n, m)))


@pytest.mark.parametrize("prior, signed", [("kl", False), ("kl", True), ("l1", False)])
def test_one_frame_is_one_surrogate_pass(prior, signed):
    """A frame adds its average statistics (A = W^T W / n, S = X^T W / n, times c_t) to the
    surrogate's, then every atom in turn moves to the surrogate's minimiser
    (naive.surrogate_step over all atoms). The basis was given, so the statistics first
    get the prior that holds it: a I and a B0, a = PRIOR_EXAMPLES times the mean squared
    norm of the frame's codes (times c_t)."""
    rng = np.random.default_rng(1)
    B0 = rng.standard_normal((12, 16))
    B0 /= np.linalg.norm(B0, axis=0)
    coder = SparseCoder(n_components=16, prior=prior, signed=signed, lam=0.05, tol=1e-12,
                        mini_batch=True, basis=B0)
    X = planted(40, seed=2)
    coder.learn_many(X)
    W = streamsc.encode(X.to_numpy(), B0, prior=prior, signed=signed, lam=0.05, tol=1e-12,
                        p=coder._learner.config.p)
    a = basis_steps.PRIOR_EXAMPLES * np.einsum("ij,ij->", W, W) / len(X)
    A = W.T @ W / len(X) + a * np.eye(16)
    S = X.to_numpy().T @ W / len(X) + a * B0
    want = naive.surrogate_step(B0, A, S, range(16))
    np.testing.assert_allclose(coder._learner.B, want, rtol=0, atol=1e-9)
    assert coder._learner.t == 1
    assert not coder._learner.prior_pending


@pytest.mark.parametrize("prior, signed", [("kl", False), ("l1", False)])
def test_one_sgd_frame_is_one_averaged_adagrad_step(prior, signed):
    """basis_update="sgd": one step along the average eq. 7 gradient G, each atom moving by
    learning_rate G_j / ||G_j|| (AdaGrad's first step), then unit norm."""
    rng = np.random.default_rng(1)
    B0 = rng.standard_normal((12, 16))
    B0 /= np.linalg.norm(B0, axis=0)
    coder = SparseCoder(n_components=16, prior=prior, signed=signed, lam=0.05, tol=1e-12,
                        learning_rate=0.3, mini_batch=True, basis=B0, basis_update="sgd")
    X = planted(40, seed=2)
    coder.learn_many(X)
    W = streamsc.encode(X.to_numpy(), B0, prior=prior, signed=signed, lam=0.05, tol=1e-12,
                        p=coder._learner.config.p)
    G = (W @ B0.T - X.to_numpy()).T @ W / len(X)
    want = np.ascontiguousarray(B0 - 0.3 * G / np.linalg.norm(G, axis=0))
    normalise_columns(want, np.empty(16))
    np.testing.assert_allclose(coder._learner.B, want, rtol=0, atol=1e-9)


def test_text_frame_is_one_averaged_softmax_step():
    """The KL loss takes AdaGrad SGD steps: one frame is one step along the average
    softmax gradient (softmax(W B^T) - X)^T W / n."""
    rng = np.random.default_rng(3)
    words = [f"w{j}" for j in range(8)]
    counts = pd.DataFrame(rng.integers(0, 5, (30, 8)).astype(float), columns=words)
    counts["w0"] += 1.0
    B0 = rng.standard_normal((8, 4))
    B0 /= np.linalg.norm(B0, axis=0)
    coder = SparseCoder(n_components=4, loss="kl", lam=0.1, learning_rate=0.5, mini_batch=True,
                        tol=1e-12, seed=0, basis=pd.DataFrame(B0, index=words))
    coder.learn_many(counts)
    X = counts.to_numpy()
    X = X / X.sum(axis=1, keepdims=True)
    W = streamsc.encode(X, B0, loss="kl", prior="kl", lam=0.1, tol=1e-12,
                        p=coder._learner.config.p)
    Z = np.exp(W @ B0.T)
    Z /= Z.sum(axis=1, keepdims=True)
    G = (Z - X).T @ W / len(X)
    want = np.ascontiguousarray(B0 - 0.5 * G / np.linalg.norm(G, axis=0))
    normalise_columns(want, np.empty(4))
    np.testing.assert_allclose(coder._learner.B, want, rtol=0, atol=1e-9)


@pytest.mark.parametrize("prior", ["kl", "l1"])
def test_mini_batches_learn_a_planted_dictionary(prior):
    data, test = planted(6000, seed=0), planted(200, seed=0).to_numpy()
    coder = SparseCoder(n_components=16, prior=prior, lam=0.05, learning_rate=0.5,
                        mini_batch=True, seed=0)

    def held_out_error():
        B = coder._learner.B
        W = streamsc.encode(test, B, prior=prior, lam=0.05)
        return float(np.mean(np.sum((test - W @ B.T) ** 2, axis=1)))

    coder.learn_many(data.iloc[:32])
    before = held_out_error()
    for start in range(32, len(data), 32):
        coder.learn_many(data.iloc[start:start + 32])
    assert held_out_error() < 0.5 * before


def test_threads_change_nothing_beyond_rounding():
    """1 and 2 threads learn the same basis and codes up to rounding: the batched EGD
    kernel multiplies each thread's block of rows in one BLAS product, whose rounding
    depends on the block (bit-identical before batched codes; 1e-6 of the largest
    coefficient is the codes' own tolerance)."""
    data = planted(300, seed=4)
    results = []
    for n_threads in (1, 2):
        coder = SparseCoder(n_components=16, lam=0.05, mini_batch=True, n_threads=n_threads,
                            seed=0)
        for start in range(0, 300, 50):
            coder.learn_many(data.iloc[start:start + 50])
        results.append((coder._learner.B.copy(), coder.transform_many(data).to_numpy()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=0, atol=1e-6)
    W = results[0][1]
    np.testing.assert_allclose(results[1][1], W, rtol=0, atol=1e-6 * np.abs(W).max())


def test_the_whole_step_runs_with_blas_on_one_thread(monkeypatch):
    """BLAS is pinned to one thread for the products of the basis step too, not only for
    the codes (a multi-threaded BLAS call between numba's parallel regions contends with
    numba's threads), and is given back its thread count afterwards."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from streamsc import _basis_steps

    def blas_threads():
        return [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                if lib["user_api"] == "blas"]

    seen = []
    update = _basis_steps.dict_kernels.surrogate_atoms

    def spy(*args):
        seen.append(blas_threads())
        return update(*args)

    coder = SparseCoder(n_components=16, lam=0.05, mini_batch=True, seed=0)
    coder.learn_many(planted(40, seed=7))  # every BLAS library it uses is loaded now
    before = blas_threads()
    monkeypatch.setattr(_basis_steps.dict_kernels, "surrogate_atoms", spy)
    coder.learn_many(planted(40, seed=8))
    coder.learn_many(planted(40, seed=9))
    assert len(seen) == 2 and all(threads and set(threads) == {1} for threads in seen)
    assert blas_threads() == before


def test_a_refused_frame_leaves_the_model_unchanged():
    coder = SparseCoder(n_components=6, lam=0.05, mini_batch=True, encoder="amortized", seed=0)
    coder.learn_many(planted(50, seed=5, k=6))
    before = pickle.dumps(coder)
    bad = planted(5, seed=6, k=6)
    bad[99] = 1.0  # a new feature, then a row too large to learn from
    bad.iloc[2, :3] = [1e200, -1e200, 1e200]
    with pytest.raises(ValueError, match="too large"):
        coder.learn_many(bad)
    assert pickle.dumps(coder) == before


@pytest.mark.parametrize(
    "params, error, fragment",
    [
        ({"mini_batch": "yes"}, TypeError, "mini_batch must be a bool"),
        ({"mini_batch": True, "gradient": "implicit"}, ValueError, "mini_batch=True"),
        ({"n_threads": 0}, ValueError, "n_threads must be >= 1"),
        ({"n_threads": 1.5}, TypeError, "n_threads"),
    ],
)
def test_bad_parameters(params, error, fragment):
    with pytest.raises(error, match=fragment):
        SparseCoder(**params)
