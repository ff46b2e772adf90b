"""The KL loss with softmax transfer (count data, text): codes against an independent scipy
reference, the implicit-gradient VJP against finite differences, the dictionary step, the
supervised learners backpropagating through KL-loss codes, planted-topic recovery through
``learn_one`` and bad input.

Conventions: a document is counts x >= 0; the KL loss compares its distribution
``x / sum(x)`` with ``softmax(B w)``. Everything is small and seeded; after compilation each
test takes well under a second except the planted-topic recovery (~1 s per seed).
"""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linear_sum_assignment, minimize

from conftest import central_differences
import streamsc
from streamsc import SparseCoder, SparseCodingClassifier, SparseCodingRegressor
from streamsc._kernels.dictionary import normalise_columns, softmax_residual
from streamsc.sklearn import SparseCodingTransformer
from test_supervised import adagrad, expected_step

LAM = 0.05


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def basis(m, k, seed):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((m, k))
    return B / np.linalg.norm(B, axis=0)


def counts(m, seed, zeros=True):
    """A document of Poisson counts (some zero unless ``zeros=False``)."""
    rng = np.random.default_rng(seed)
    x = rng.poisson(1.5, m).astype(float)
    x[0] += 1.0
    if not zeros:
        x += 1.0
    return x


def kl_loss(xbar, z):
    """KL(xbar || softmax(z)), written independently of the kernels."""
    top = z.max()
    lse = top + np.log(np.exp(z - top).sum())
    nz = xbar > 0
    return float(np.sum(xbar[nz] * (np.log(xbar[nz]) - z[nz])) + lse)


def kl_prior(w, p):
    return float(np.sum(w * np.log(w / p) - w + p))


def scipy_code(x, B, lam, p, signed):
    """The reference code: L-BFGS-B on u = log w of the explicit objective
    KL(xbar || softmax(B c)) + lam * KL(w || p), with w = (w+, w-) on [B, -B] and
    c = w+ - w- when signed (the paper's expanded basis), gradient in closed form."""
    xbar = x / x.sum()
    m, k = B.shape
    n = 2 * k if signed else k

    def fun(u):
        w = np.exp(u)
        c = w[:k] - w[k:] if signed else w
        z = B @ c
        q = softmax(z)
        gc = B.T @ (q - xbar)
        gw = np.concatenate([gc, -gc]) if signed else gc
        gw = gw + lam * np.log(w / p)
        return kl_loss(xbar, z) + lam * kl_prior(w, p), gw * w

    res = minimize(fun, np.full(n, np.log(p)), jac=True, method="L-BFGS-B",
                   options=dict(gtol=1e-14, ftol=1e-16, maxiter=20000, maxcor=30))
    w = np.exp(res.x)
    return (w[:k] - w[k:] if signed else w), res.fun


def objective(x, B, c, lam, p, signed):
    """The objective at the code c (signed: at its optimal split w+ w- = p^2)."""
    xbar = x / x.sum()
    if signed:
        half = np.sqrt(c * c + 4 * p * p)
        wp = 0.5 * (c + half)
        reg = kl_prior(wp, p) + kl_prior(wp - c, p)
    else:
        reg = kl_prior(c, p)
    return kl_loss(xbar, B @ c) + lam * reg


# ---------------------------------------------------------------------------------------
# codes


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("solver", ["newton", "egd"])
def test_codes_match_scipy_reference(signed, solver):
    """encode(loss="kl") agrees with L-BFGS-B on the explicit objective to 1e-6 relative
    (the default tol, 1e-6 * lam) and its objective is no worse than the reference's."""
    m, k = 40, 8
    B = basis(m, k, 0)
    p = 1.0 / k
    for seed in range(3):
        x = counts(m, seed)
        w = streamsc.encode(x, B, loss="kl", lam=LAM, signed=signed, solver=solver)
        ref, fref = scipy_code(x, B, LAM, p, signed)
        scale = np.abs(ref).max()
        assert np.abs(w - ref).max() <= 1e-6 * scale, (seed, np.abs(w - ref).max() / scale)
        assert objective(x, B, w, LAM, p, signed) <= fref + 1e-12


def test_codes_ignore_document_length():
    """Only the word proportions matter: doubling every count changes nothing."""
    B = basis(30, 6, 1)
    x = counts(30, 0)
    w1 = streamsc.encode(x, B, loss="kl", lam=LAM, tol=1e-12)
    w2 = streamsc.encode(2 * x, B, loss="kl", lam=LAM, tol=1e-12)
    np.testing.assert_allclose(w1, w2, rtol=1e-10)


# ---------------------------------------------------------------------------------------
# VJP


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_vjp_matches_finite_differences(signed):
    """grad_B, grad_x and grad_lam of encode_vjp(loss="kl") against central finite
    differences of g . encode(x, B, loss="kl"), entry by entry for B and x. x moves freely
    (encode renormalises it; only its positive counts are perturbed, a zero count cannot go
    negative), so grad_x is the gradient with respect to the counts as given and is
    orthogonal to x."""
    m, k = 12, 5
    B = basis(m, k, 2)
    x = counts(m, 3)
    assert np.any(x == 0)
    g = np.random.default_rng(4).standard_normal(k)
    kw = dict(loss="kl", lam=LAM, signed=signed)
    tight = 1e-13

    def f(B_=B, x_=x, lam=LAM):
        return float(g @ streamsc.encode(x_, B_, **{**kw, "lam": lam}, tol=tight * lam / LAM))

    w = streamsc.encode(x, B, **kw, tol=tight)
    grad_B, grad_x, grad_lam = streamsc.encode_vjp(x, B, w, g, **kw, return_grad_lam=True)
    eps = 1e-6
    fd_B = central_differences(lambda B_: f(B_=B_), B, eps)
    fd_x = np.zeros(m)
    for i in np.flatnonzero(x > 0):
        e = np.zeros(m)
        e[i] = eps
        fd_x[i] = (f(x_=x + e) - f(x_=x - e)) / (2 * eps)
    fd_lam = (f(lam=LAM + eps) - f(lam=LAM - eps)) / (2 * eps)
    scale_B = np.abs(fd_B).max()
    assert np.abs(grad_B - fd_B).max() <= 1e-6 * scale_B
    pos = x > 0
    assert np.abs(grad_x[pos] - fd_x[pos]).max() <= 1e-6 * np.abs(fd_x).max()
    assert abs(grad_x @ x) <= 1e-12 * np.abs(grad_x).max() * x.sum()
    assert grad_lam == pytest.approx(fd_lam, rel=1e-6)


@pytest.mark.parametrize("signed", [False, True])
def test_vjp_over_many_words_by_conjugate_gradients(signed):
    """A document over many words: the KL-loss direction takes the conjugate-gradient path
    (its system is near the identity; at the 12 words above it falls back to the dense
    factor) and equals the dense solve of ``H v = g``, ``H = B^T S B + diag(1/d)``, in
    grad_B, grad_x and grad_lam."""
    from streamsc._kernels import vjp as vjp_kernels

    m, k = 3000, 64
    B = basis(m, k, 6)
    x = counts(m, 7)
    xn = x / x.sum()
    g = np.random.default_rng(8).standard_normal(k)
    kw = dict(loss="kl", lam=LAM, signed=signed)
    if signed:
        w, (wp, wm) = streamsc.encode(x, B, **kw, tol=1e-12, return_halves=True)
        extra = dict(halves=(wp, wm))
    else:
        w, extra = streamsc.encode(x, B, **kw, tol=1e-12), {}
    grad_B, grad_x, grad_lam = streamsc.encode_vjp(x, B, w, g, **kw, **extra,
                                                   return_grad_lam=True)
    # the dense reference, in numpy
    p = 1.0 / k
    if signed:
        c, d = wp - wm, (wp + wm) / LAM
        phi = (wp * np.log(wp / p) - wm * np.log(wm / p)) / (wp + wm)
    else:
        c, d, phi = w, w / LAM, np.log(w / p)
    z = B @ c
    q = np.exp(z - z.max())
    q /= q.sum()
    S = np.diag(q) - np.outer(q, q)
    v = np.linalg.solve(B.T @ S @ B + np.diag(1.0 / d), g)
    assert np.allclose(grad_B, np.outer(xn - q, v) - np.outer(S @ (B @ v), c),
                       rtol=0, atol=1e-10 * np.abs(grad_B).max())
    # grad_x is with respect to the counts as given (encode renormalises them)
    Bv = B @ v
    assert np.allclose(grad_x, (Bv - xn @ Bv) / x.sum(), rtol=0,
                       atol=1e-10 * np.abs(grad_x).max())
    assert grad_lam == pytest.approx(-(v @ phi), rel=1e-9)
    # the path taken: conjugate gradients converge here within k/8 iterations ...
    f = np.sqrt(d)
    y = np.empty(k)
    assert vjp_kernels._kl_cg(B, f, q, f * g, k // 8, vjp_kernels.KL_CG_RTOL, y)
    # ... and not at the 12 words of the finite-difference test (the dense factor's case)
    B12, x12 = basis(12, 5, 2), counts(12, 3)
    w12 = streamsc.encode(x12, B12, loss="kl", lam=LAM, tol=1e-12)
    z12 = B12 @ w12
    q12 = np.exp(z12 - z12.max())
    q12 /= q12.sum()
    f12 = np.sqrt(w12 / LAM)
    assert not vjp_kernels._kl_cg(B12, f12, q12, f12 * g[:5], 1, vjp_kernels.KL_CG_RTOL,
                                  np.empty(5))


def test_vjp_batch_is_the_sum_of_rows():
    m, k = 20, 6
    B = basis(m, k, 5)
    X = np.array([counts(m, s) for s in range(4)])
    W = streamsc.encode(X, B, loss="kl", lam=LAM, tol=1e-12)
    G = np.random.default_rng(6).standard_normal((4, k))
    grad_B, grad_X = streamsc.encode_vjp(X, B, W, G, loss="kl", lam=LAM)
    rows = [streamsc.encode_vjp(X[i], B, W[i], G[i], loss="kl", lam=LAM) for i in range(4)]
    np.testing.assert_allclose(grad_B, sum(r[0] for r in rows), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad_X, np.array([r[1] for r in rows]), rtol=1e-12, atol=1e-14)


def test_vjp_needs_the_kl_prior():
    B = basis(5, 3, 0)
    with pytest.raises(ValueError, match="prior='kl'"):
        streamsc.encode_vjp(np.ones(5), B, np.ones(3), np.ones(3), loss="kl", prior="l1")
    with pytest.raises(ValueError, match="negative"):
        streamsc.encode_vjp(-np.ones(5), B, np.ones(3), np.ones(3), loss="kl")


# ---------------------------------------------------------------------------------------
# the dictionary step


def test_softmax_residual_kernel():
    B = basis(9, 3, 7)
    w = np.array([0.5, 2.0, 0.1])
    x = counts(9, 8)
    x /= x.sum()
    g = np.empty(9)
    loss = softmax_residual(B, w, x, g)
    np.testing.assert_allclose(g, softmax(B @ w) - x, atol=1e-15)
    assert loss == pytest.approx(kl_loss(x, B @ w), rel=1e-12)


def test_learn_one_step_is_eq7_with_softmax_over_every_row():
    """One learn_one on a document over some of the known words: eq. 7's gradient
    (softmax(B w) - xbar) w^T over every row (missing words are zero counts and move too),
    w the code under the basis before the step, with the per-atom AdaGrad step."""
    words = [f"w{i}" for i in range(10)]
    B_start = np.random.default_rng(3).standard_normal((10, 4))
    model = SparseCoder(n_components=4, loss="kl", lam=LAM, p=0.25, learning_rate=0.7,
                        seed=3, tol=1e-12 * LAM, basis=pd.DataFrame(B_start, index=words))
    model.learn_one({w: 1 for w in words})
    model.learn_one({"w1": 2, "w4": 1})
    B0, G0 = model.basis_.to_numpy(), model._learner.G.copy()
    doc = {"w2": 3, "w7": 1, "w9": 2}
    xbar = np.zeros(10)
    for word, c in doc.items():
        xbar[words.index(word)] = c
    xbar /= xbar.sum()
    w = streamsc.encode(xbar, B0, loss="kl", lam=LAM, tol=1e-13 * LAM)
    model.learn_one(doc)
    E = expected_step(B0, adagrad(np.outer(softmax(B0 @ w) - xbar, w), G0, 0.7), 1.0)
    np.testing.assert_allclose(model.basis_.to_numpy(), E, atol=1e-9)
    assert np.all(np.abs(model.basis_.to_numpy() - B0)[[0, 1, 3]] > 0)  # absent words moved


def test_learn_many_and_transform_many_match_the_one_by_one_calls():
    rng = np.random.default_rng(9)
    X = pd.DataFrame(rng.poisson(1.0, (12, 7)), columns=list("abcdefg"))
    X.iloc[:, 0] += 1
    one = SparseCoder(n_components=3, loss="kl", lam=LAM, seed=0)
    many = SparseCoder(n_components=3, loss="kl", lam=LAM, seed=0)
    for _, row in X.iterrows():
        # zero counts included: every column is a key, so the vocabulary grows as in
        # learn_many (with the KL loss a known word's row moves with every document)
        one.learn_one(dict(row))
    many.learn_many(X)
    np.testing.assert_allclose(one.basis_.to_numpy(), many.basis_.to_numpy(), atol=1e-10)
    Xt = X.copy()
    Xt["zz"] = 1  # an unknown word: ignored
    Xt.iloc[3, :7] = 0  # no known word: zeros
    W = many.transform_many(Xt)
    for i, (_, row) in enumerate(Xt.iterrows()):
        code = many.transform_one(dict(row))
        np.testing.assert_allclose(W.iloc[i].to_numpy(), list(code.values()), rtol=1e-5,
                                   atol=1e-12)
    assert np.all(W.iloc[3].to_numpy() == 0)


def test_sklearn_transformer_learns_the_same_basis():
    rng = np.random.default_rng(10)
    X = rng.poisson(1.0, (30, 8)).astype(float)
    X[:, 0] += 1
    skl = SparseCodingTransformer(n_components=3, loss="kl", lam=LAM, shuffle=False,
                                  random_state=2).fit(X)
    riv = SparseCoder(n_components=3, loss="kl", lam=LAM, seed=2)
    for row in X:
        riv.learn_one(dict(enumerate(row)))
    np.testing.assert_allclose(skl.components_.T, riv.basis_.to_numpy(), atol=1e-10)
    assert np.all(skl.transform(np.zeros((1, 8))) == 0)
    with pytest.raises(ValueError, match="non-negative"):
        skl.transform(-X[:2])
    with pytest.raises(ValueError, match="all-zero row"):
        SparseCodingTransformer(n_components=3, loss="kl").fit(np.zeros((2, 8)))


# ---------------------------------------------------------------------------------------
# the supervised learners


def test_classifier_backprop_step_is_the_fd_gradient_step():
    """A labelled step of a classifier whose coder has loss="kl": B1 = normalise(B0 - eta G)
    with G the finite-difference gradient of rho * min_w(coding objective) + beta *
    logloss(head(code(x, B)), y), the head (and its standardisation of the codes: running
    mean and sample standard deviation) held fixed."""
    m, k = 6, 4
    words = list(range(m))
    coder = SparseCoder(n_components=k, loss="kl", lam=LAM, p=1.0 / k, tol=1e-12 * LAM,
                        learning_rate=0.3, seed=1)
    rho, beta = 0.5, 2.0
    model = SparseCodingClassifier(coder=coder, gradient="implicit", raw_features=False,
                                   reconstruction_weight=rho,
                                   backprop_weight=beta, learning_rate=0.5)
    rng = np.random.default_rng(11)
    for i in range(12):
        model.learn_one({w: int(c) + (w == 0) for w, c in zip(words, rng.poisson(1.0, m))},
                        i % 3)
    x = {0: 2, 2: 1, 3: 4, 5: 1}
    xv = np.array([x.get(w, 0) for w in words], dtype=float)
    xbar = xv / xv.sum()
    lr = model.coder_._learner
    B0, G0 = lr.B.copy(), lr.G.copy()
    V, b, c = model._V.copy(), model._b.copy(), model.classes_.index(1)
    mu, sigma = model._w_mean.copy(), model._code_scale()
    assert sigma is not None

    def code(B):
        with warnings.catch_warnings():
            warnings.simplefilter("error", streamsc.ConvergenceWarning)
            return streamsc.encode(xbar, B, loss="kl", lam=LAM, tol=1e-13 * LAM)

    def loss(B):
        w = code(B)
        z = V @ ((w - mu) / sigma) + b
        head = float(np.log(np.exp(z - z.max()).sum()) + z.max() - z[c])
        return beta * head + rho * (kl_loss(xbar, B @ w) + LAM * kl_prior(w, 1.0 / k))

    G = central_differences(loss, B0)
    model.learn_one(x, 1)
    want = expected_step(B0, adagrad(G, G0, 0.3), 1.0)
    err = np.abs((lr.B - B0) - (want - B0)).max() / np.abs(want - B0).max()
    assert err < 1e-6


def test_regressor_with_a_kl_loss_coder_learns():
    """Documents whose target is the share of one theme: the regressor over KL-loss codes,
    with backprop, ends with half the error of predicting the mean."""
    rng = np.random.default_rng(12)
    m = 20
    model = SparseCodingRegressor(
        coder=SparseCoder(n_components=4, loss="kl", lam=LAM, p=1.0, learning_rate=1.0,
                          seed=0),
        gradient="implicit",
    )
    errors = []
    for _ in range(600):
        share = rng.uniform()
        q = np.r_[np.full(m // 2, share), np.full(m // 2, 1 - share)] + 0.02
        doc = dict(enumerate(rng.multinomial(60, q / q.sum())))
        errors.append(abs(model.predict_one(doc) - share))
        model.learn_one(doc, share)
    # predicting the mean share (0.5) errs by 0.25 on average
    assert np.mean(errors[-200:]) < 0.5 * 0.25


# ---------------------------------------------------------------------------------------
# planted topics


def planted_topics(seed, n_words=300, n_topics=10, support=20):
    """B*: column t is the indicator of the 20 words of topic t (drawn at random, topics
    may share words), in logit space: a document with topic weights c has word distribution
    softmax(logit * B* c)."""
    rng = np.random.default_rng(seed)
    B = np.zeros((n_words, n_topics))
    for t in range(n_topics):
        B[rng.choice(n_words, support, replace=False), t] = 1.0
    return B


def planted_documents(B, n, seed, logit=4.0, length=200):
    """Each document mixes 1 or 2 topics with weights uniform in [0.5, 1] * logit and draws
    ``length`` tokens from softmax(B c) (a multinomial; BagOfWords-style dict of counts)."""
    rng = np.random.default_rng(seed)
    n_topics = B.shape[1]
    docs = []
    for _ in range(n):
        topics = rng.choice(n_topics, rng.integers(1, 3), replace=False)
        c = np.zeros(n_topics)
        c[topics] = rng.uniform(0.5, 1.0, topics.size) * logit
        x = rng.multinomial(length, softmax(B @ c))
        docs.append({f"w{i}": int(x[i]) for i in np.flatnonzero(x)})
    return docs


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_topics_are_recovered(seed):
    """After one pass over 1000 documents through learn_one, >= 9 of the 10 planted topics
    have a learned atom with |cos| > 0.9 (Hungarian matching). Softmax ignores a constant
    added to a column of B, so columns are centred (mean over the vocabulary removed) before
    the comparison. Measured: all 10 above 0.9 for seeds 0-5."""
    B_star = planted_topics(seed)
    docs = planted_documents(B_star, 1000, seed + 100)
    model = SparseCoder(n_components=10, loss="kl", seed=seed)  # the defaults
    for doc in docs:
        model.learn_one(doc)
    names = [f"w{i}" for i in range(B_star.shape[0])]
    learned = model.basis_.reindex(names).fillna(0.0).to_numpy()
    L = learned - learned.mean(axis=0)
    P = B_star - B_star.mean(axis=0)
    cos = np.abs((P / np.linalg.norm(P, axis=0)).T @ (L / np.linalg.norm(L, axis=0)))
    rows, cols = linear_sum_assignment(-cos)
    assert np.sum(cos[rows, cols] > 0.9) >= 9, cos[rows, cols].round(2)


def test_bag_of_words_pipeline():
    from river import feature_extraction

    model = feature_extraction.BagOfWords() | SparseCoder(n_components=3, loss="kl", seed=0)
    assert model.transform_one("nothing learned yet") == {f"atom_{j}": 0.0 for j in range(3)}
    for text in ["red blue green", "blue green grey", "green grey pink pink"]:
        model.learn_one(text)
    code = model.transform_one("blue green green")
    assert all(v > 0 for v in code.values())
    assert model.transform_one("unknown words only") == {f"atom_{j}": 0.0 for j in range(3)}
    before = model["SparseCoder"].basis_
    model.learn_one("a b c")  # BagOfWords drops 1-letter words: a blank document
    assert model["SparseCoder"].basis_.equals(before)  # nothing to learn from


# ---------------------------------------------------------------------------------------
# bad input


def state(model):
    lr = model._learner
    return model._features.names.copy(), lr.B.copy(), lr.t, lr.version


def assert_unchanged(model, before):
    names, B, t, version = state(model)
    assert names == before[0] and t == before[2] and version == before[3]
    assert np.array_equal(B, before[1])


@pytest.mark.parametrize(
    "doc, match",
    [
        ({"a": 1, "new": -1}, "non-negative"),
        ({"a": float("nan")}, "finite"),
        ({"a": float("inf"), "b": 1}, "finite"),
        ({"a": "2"}, "real number"),
    ],
)
def test_bad_documents_leave_the_model_unchanged(doc, match):
    model = SparseCoder(n_components=3, loss="kl", seed=0)
    model.learn_one({"a": 1, "b": 2})
    before = state(model)
    error = TypeError if match == "real number" else ValueError
    with pytest.raises(error, match=match):
        model.learn_one(doc)
    assert_unchanged(model, before)
    clf = SparseCodingClassifier(coder=model)
    with pytest.raises(error, match=match):
        clf.learn_one(doc, "y")
    assert_unchanged(model, before)
    assert clf.classes_ == []


@pytest.mark.parametrize("doc", [{}, {"a": 0, "new": 0}, {"new": 0.0}], ids=["empty", "zeros",
                                                                          "new-zero"])
def test_blank_documents_are_nothing_to_learn(doc):
    """A document with no positive count (BagOfWords of "" or "!!!") carries no
    distribution: learn_one does nothing, for the coder and the classifier alike, so a text
    stream never stops on one."""
    model = SparseCoder(n_components=3, loss="kl", seed=0)
    model.learn_one({"a": 1, "b": 2})
    before = state(model)
    model.learn_one(doc)
    assert_unchanged(model, before)
    clf = SparseCodingClassifier(coder=model)
    clf.learn_one(doc, "y")
    assert_unchanged(model, before)
    assert clf.classes_ == []


def test_transform_of_bad_documents():
    model = SparseCoder(n_components=3, loss="kl", seed=0)
    model.learn_one({"a": 1, "b": 2})
    with pytest.raises(ValueError, match="non-negative"):
        model.transform_one({"a": -1})
    assert model.transform_one({"a": 0}) == {"atom_0": 0.0, "atom_1": 0.0, "atom_2": 0.0}
    assert model.transform_one({}) == {"atom_0": 0.0, "atom_1": 0.0, "atom_2": 0.0}
    with pytest.raises(ValueError, match="non-negative"):
        model.learn_many(pd.DataFrame({"a": [1, -1]}))
    assert list(model.basis_.index) == ["a", "b"]


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"loss": "kl", "prior": "l1"}, ValueError, "prior='kl'"),
        ({"loss": "poisson"}, ValueError, "loss"),
        ({"loss": None}, TypeError, "loss"),
    ],
)
def test_bad_loss_parameter(params, error, match):
    with pytest.raises(error, match=match):
        SparseCoder(**params)
    with pytest.raises(error, match=match):
        SparseCodingTransformer(**params).fit(np.ones((2, 3)))
