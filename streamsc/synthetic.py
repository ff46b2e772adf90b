"""Planted problems: data made from a known dictionary or known topics, to check that a learner
finds them (the suite behind the learner's defaults, its tests and
``benchmarks/dictionary_quality.py``).

* :func:`planted_dictionary` -- examples ``x = B* w* + noise`` with sparse planted codes;
* :func:`recovery` -- the fraction of planted atoms a learned basis holds;
* :func:`planted_topics` -- word counts of documents mixing overlapping planted topics.

This module is not imported by ``import streamsc``; use ``from streamsc import synthetic``.
"""

import numpy as np

from . import _validation as validation

__all__ = ["planted_dictionary", "planted_topics", "recovery"]

SCALINGS = ("unit", "standard")

#: the range of a planted code's non-zero weights (uniform)
WEIGHT_RANGE = (0.5, 1.5)

#: a planted document's share of its main topic (the rest is its second topic's)
MAIN_TOPIC_SHARE = 0.7


def planted_dictionary(m, k, n, *, sparsity=3, signed=True, noise=0.1, scaling="unit", seed=0):
    """Examples made from a planted dictionary.

    ``B*`` (m, k) has unit-norm Gaussian atoms. Each example is ``x = B* w* + e``: ``w*`` has
    ``sparsity`` atoms, chosen at random, with magnitudes uniform in [0.5, 1.5] (random signs
    if ``signed``), and ``e`` is Gaussian noise at ``noise`` times the size of that
    example's ``B* w*`` per feature, ``||B* w*|| / sqrt(m)`` (a fixed signal-to-noise ratio:
    20 dB at the default 0.1). ``scaling="unit"`` rescales every example to unit norm;
    ``"standard"`` standardises every feature to mean 0 and variance 1 over the sample (what
    a ``StandardScaler`` in front of the coder does), with the planted atoms mapped the same
    way (and rescaled to unit norm), so they stay the dictionary of the scaled data.

    Parameters
    ----------
    m, k, n : int
        Features, atoms and examples.
    sparsity : int
        Planted atoms per example (at most k).
    signed : bool
        Planted coefficients of both signs (else non-negative).
    noise : float
        Relative noise level (0: none).
    scaling : {"unit", "standard"}
    seed : int

    Returns
    -------
    B : ndarray of shape (m, k)
        The planted atoms (in the scaled space).
    X : ndarray of shape (n, m)
        The examples.

    Examples
    --------
    >>> from streamsc.synthetic import planted_dictionary
    >>> B, X = planted_dictionary(8, 12, 100, seed=0)
    >>> B.shape, X.shape, round(float((X * X).sum(axis=1).mean()), 6)
    ((8, 12), (100, 8), 1.0)
    """
    m = validation.check_int("m", m, low=1)
    k = validation.check_int("k", k, low=1)
    n = validation.check_int("n", n, low=1)
    sparsity = validation.check_int("sparsity", sparsity, low=1)
    if sparsity > k:
        raise ValueError(f"sparsity must be <= k ({k}), got {sparsity}")
    signed = validation.check_bool("signed", signed)
    noise = validation.check_real("noise", noise, low=0.0, low_inclusive=True)
    validation.check_choice("scaling", scaling, SCALINGS)
    rng = np.random.default_rng(validation.check_int("seed", seed, low=0))
    B = rng.standard_normal((m, k))
    B /= np.linalg.norm(B, axis=0)
    W = np.zeros((n, k))
    for i in range(n):
        idx = rng.choice(k, size=sparsity, replace=False)
        W[i, idx] = rng.uniform(*WEIGHT_RANGE, size=sparsity)
        if signed:
            W[i, idx] *= rng.choice([-1.0, 1.0], size=sparsity)
    X = W @ B.T
    X += noise * np.linalg.norm(X, axis=1, keepdims=True) / np.sqrt(m) * rng.standard_normal(
        X.shape)
    if scaling == "unit":
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    else:
        X -= X.mean(axis=0)
        sd = X.std(axis=0)
        X /= sd
        B = B / sd[:, None]
        B /= np.linalg.norm(B, axis=0)
    return np.ascontiguousarray(B), np.ascontiguousarray(X)


def recovery(B_true, B, threshold=0.95):
    """The fraction of planted atoms (columns of ``B_true``) that some atom of ``B`` matches
    to ``|cos| >= threshold`` (atoms' signs do not matter: a signed code flips them).

    Examples
    --------
    >>> import numpy as np
    >>> from streamsc.synthetic import recovery
    >>> recovery(np.eye(3), np.eye(3)[:, [2, 0]] * -2.0)
    0.6666666666666666
    """
    B_true = np.asarray(B_true, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    if B_true.shape[0] != B.shape[0]:
        raise ValueError(
            f"B_true has {B_true.shape[0]} rows (features) but B has {B.shape[0]}"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        C = (B_true / np.linalg.norm(B_true, axis=0)).T @ (B / np.linalg.norm(B, axis=0))
    C = np.nan_to_num(np.abs(C))
    return float((C.max(axis=1) >= threshold).mean())


def planted_topics(n_docs, *, n_topics=6, vocabulary=120, words_per_topic=30, shared=10,
                   doc_length=40, seed=0):
    """Word counts of documents, each mostly about one of ``n_topics`` overlapping topics.

    Topic j draws from ``words_per_topic`` words: its own ones plus ``shared`` words it has
    in common with topic ``j + 1`` (cyclically), so neighbouring topics overlap. A document
    has a dominant topic (weight 0.7) and a second one (0.3), and ``doc_length`` words drawn
    from that mixture.

    Parameters
    ----------
    n_docs : int
    n_topics, vocabulary, words_per_topic, shared, doc_length : int
    seed : int

    Returns
    -------
    docs : list of dict
        One ``{word: count}`` per document (words are ``"w0"``, ``"w1"``, ...), as river's
        ``BagOfWords`` would emit.
    topics : ndarray of shape (n_docs,)
        The dominant topic of each document.

    Examples
    --------
    >>> from streamsc.synthetic import planted_topics
    >>> docs, topics = planted_topics(5, seed=0)
    >>> len(docs), sum(docs[0].values()), topics.shape
    (5, 40, (5,))
    """
    n_docs = validation.check_int("n_docs", n_docs, low=1)
    n_topics = validation.check_int("n_topics", n_topics, low=2)
    vocabulary = validation.check_int("vocabulary", vocabulary, low=1)
    words_per_topic = validation.check_int("words_per_topic", words_per_topic, low=1)
    shared = validation.check_int("shared", shared, low=0)
    doc_length = validation.check_int("doc_length", doc_length, low=1)
    step = words_per_topic - shared
    if step < 1 or step * n_topics > vocabulary:
        raise ValueError(
            f"{n_topics} topics of {words_per_topic} words sharing {shared} need a vocabulary "
            f"of at least {max(step, 1) * n_topics} words, got {vocabulary}"
        )
    rng = np.random.default_rng(validation.check_int("seed", seed, low=0))
    topics = np.zeros((n_topics, vocabulary))
    for j in range(n_topics):
        words = (j * step + np.arange(words_per_topic)) % (step * n_topics)
        topics[j, words] = rng.dirichlet(np.ones(words_per_topic))
    docs, dominant = [], np.empty(n_docs, dtype=np.int64)
    for i in range(n_docs):
        first, second = rng.choice(n_topics, size=2, replace=False)
        mix = MAIN_TOPIC_SHARE * topics[first] + (1.0 - MAIN_TOPIC_SHARE) * topics[second]
        counts = rng.multinomial(doc_length, mix / mix.sum())
        docs.append({f"w{w}": int(c) for w, c in enumerate(counts) if c})
        dominant[i] = first
    return docs, dominant
