"""The defaults learn: planted dictionaries and planted topics with only ``n_components`` and
``seed`` given (and the prior, gradient or encoder under test), no tuned step or lam."""

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import TruncatedSVD
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from streamsc import SparseCoder
from streamsc.synthetic import planted_dictionary, planted_topics, recovery

M, K, N = 32, 64, 30000

CASES = {
    "kl": dict(),
    "kl-signed": dict(signed=True),
    "l1": dict(prior="l1"),
    "l1-signed": dict(prior="l1", signed=True),
    "implicit": dict(gradient="implicit"),
    "implicit-kl-signed": dict(gradient="implicit", signed=True),
    "implicit-l1": dict(gradient="implicit", prior="l1"),
    "implicit-l1-signed": dict(gradient="implicit", prior="l1", signed=True),
    "unrolled-l1": dict(gradient="unrolled", prior="l1"),
    "unrolled-l1-signed": dict(gradient="unrolled", prior="l1", signed=True),
    "unrolled-kl": dict(gradient="unrolled"),
    "unrolled-kl-signed": dict(gradient="unrolled", signed=True),
    "amortized": dict(encoder="amortized"),
    "amortized-kl-signed": dict(encoder="amortized", signed=True),
    "amortized-l1": dict(encoder="amortized", prior="l1"),
    "amortized-l1-signed": dict(encoder="amortized", prior="l1", signed=True),
    "mini-batch": dict(mini_batch=True),
}


@pytest.mark.parametrize("params", list(CASES.values()), ids=list(CASES))
def test_planted_dictionary_is_recovered_with_defaults(params):
    """>= 90% of the planted atoms at |cos| >= 0.95 within 30,000 unit-norm examples (two
    planted atoms each), with the defaults; rows go through learn_many, which is learn_one
    on every row in order (mini_batch=True: frames of 256 rows, one step each)."""
    signed = params.get("signed", False)
    B_true, X = planted_dictionary(M, K, N, sparsity=2, signed=signed, seed=0)
    coder = SparseCoder(n_components=K, seed=0, **params)
    chunk = 256 if params.get("mini_batch") else 5000
    for start in range(0, N, chunk):
        coder.learn_many(pd.DataFrame(X[start:start + chunk]))
    assert recovery(B_true, coder.basis_.to_numpy()) >= 0.9


def test_planted_dictionary_after_standard_scaling_is_recovered_with_defaults():
    """Features standardised (what a StandardScaler in front does: norms near sqrt(m))."""
    B_true, X = planted_dictionary(M, K, N, sparsity=2, signed=True, scaling="standard", seed=1)
    coder = SparseCoder(n_components=K, seed=0, signed=True)
    coder.learn_many(pd.DataFrame(X))
    assert recovery(B_true, coder.basis_.to_numpy()) >= 0.9


def test_default_text_codes_find_topics_as_well_as_lsa():
    """KL-loss codes with defaults predict the dominant topic of a document at least as well
    as a truncated SVD (LSA) of the counts with as many dimensions, by the same linear head
    on the raw features."""
    docs, topics = planted_topics(3000, seed=0)
    k = 12
    coder = SparseCoder(n_components=k, loss="kl", seed=0)
    for doc in docs:
        coder.learn_one(doc)
    W = np.array([list(coder.transform_one(doc).values()) for doc in docs])
    vocabulary = sorted({w for doc in docs for w in doc})
    counts = np.array([[doc.get(w, 0) for w in vocabulary] for doc in docs], dtype=float)
    lsa = TruncatedSVD(k, random_state=0).fit_transform(counts)

    def accuracy(F):
        return cross_val_score(LogisticRegression(max_iter=2000), F, topics, cv=3).mean()

    assert accuracy(W) >= accuracy(lsa) - 0.005


def test_default_lam_follows_the_scale_of_the_data():
    """lam=None is calibrated on the first n_components examples' mean norm: the same stream
    scaled by 1024 learns the same basis (L1 codes are homogeneous: x -> s x, lam -> s lam
    gives w -> s w), and its lam is 1024 times as large. The two agree to the solver's
    tolerance carried over 2,000 steps, not bit for bit."""
    B_true, X = planted_dictionary(16, 24, 2000, sparsity=2, signed=True, seed=3)
    small = SparseCoder(n_components=24, prior="l1", signed=True, seed=0)
    large = SparseCoder(n_components=24, prior="l1", signed=True, seed=0)
    small.learn_many(pd.DataFrame(X))
    large.learn_many(pd.DataFrame(1024.0 * X))
    assert large._learner.config.lam == pytest.approx(1024.0 * small._learner.config.lam)
    np.testing.assert_allclose(large.basis_.to_numpy(), small.basis_.to_numpy(), atol=1e-3)
    fixed = SparseCoder(n_components=24, prior="l1", signed=True, lam=0.1, seed=0)
    fixed.learn_many(pd.DataFrame(1024.0 * X))  # an absolute lam does not follow the scale
    assert np.abs(fixed.basis_.to_numpy() - small.basis_.to_numpy()).max() > 0.1
