"""Pang & Lee's movie scale data v1.0 (the paper's Section 6.3.3, Table 6):
:func:`load_movie_scale`."""

import itertools

import numpy as np
import scipy.sparse as sp

from .. import _validation as validation
from ._files import _data_file, resolve_data_dir

__all__ = ["MOVIE_AUTHORS", "load_movie_scale"]

#: the four critics of the movie scale data, in the (sorted) order their reviews are returned
MOVIE_AUTHORS = ("Dennis+Schwartz", "James+Berardinelli", "Scott+Renshaw", "Steve+Rhodes")

#: distinct whitespace-separated tokens in the 5,006 ``subj`` lines (fixed by the checksums)
_MOVIE_N_TOKENS = 55449


def _count_matrix(docs):
    """(counts, words): the CSR matrix of token counts (documents x distinct tokens, int64)
    of whitespace-split ``docs``, columns in alphabetical (code point) order of ``words``."""
    import pandas as pd

    tokens = [d.split() for d in docs]
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    flat = np.fromiter(itertools.chain.from_iterable(tokens), dtype=object, count=lengths.sum())
    codes, words = pd.factorize(flat, sort=True)
    rows = np.repeat(np.arange(len(docs)), lengths)
    counts = sp.csr_matrix(
        (np.ones(flat.size, dtype=np.int64), (rows, codes)), shape=(len(docs), words.size)
    )
    counts.sum_duplicates()
    return counts, np.asarray(words, dtype=object)


def load_movie_scale(data_dir=None, n_words=5000):
    """Pang & Lee's movie scale data v1.0: word counts of 5,006 reviews and their ratings.

    Documents are the ``subj.<author>`` lines (a review's subjective sentences, lower-cased
    and tokenised), authors in sorted order (:data:`MOVIE_AUTHORS`), lines in file order.
    Tokens are the line split on whitespace (the files separate tokens by single spaces, so
    this is the same as splitting on ``" "`` and dropping empty strings); punctuation tokens
    such as ``","`` are words like any other, and no stop words are removed (the paper
    mentions no such step).

    **Vocabulary.** The paper uses "the 5000 words with the highest tf-idf score among the
    5006 movie reviews" without defining a word's score. Here it is the word's *summed*
    tf-idf over all documents, with scikit-learn's default tf-idf
    (``TfidfTransformer()``): for each document the vector of
    ``count(w, d) * (ln((1 + N) / (1 + df(w))) + 1)`` (N = 5006 documents, df = number of
    documents containing w) scaled to unit Euclidean norm, then summed over documents. The
    ``n_words`` best scores are kept, ties broken alphabetically; frequent words lead (the
    first are ``"the"``, ``","``, ``"."``, ``"a"``). The sLDA paper, which the paper follows,
    was not available to check its convention. (The alternative, a word's
    largest tf-idf in any single document, favours rare names such as "bean" or "sherlock"
    and shares only about 1,560 of its top 5,000 words with this one.) The score depends on
    the whole corpus, so the vocabulary is chosen once over all 5,006 reviews, as in the paper,
    not per cross-validation fold.

    Parameters
    ----------
    data_dir : str or os.PathLike or None, default=None
        The data directory (see :func:`resolve_data_dir`); reads the ``subj`` and ``rating``
        files under ``movie_scale/scaledata/``.
    n_words : int, default=5000
        Size of the vocabulary, at most the number of distinct tokens (55,449).

    Returns
    -------
    counts : scipy.sparse.csr_matrix of shape (5006, n_words), int64
        Raw token counts of the vocabulary words; column ``j`` is ``vocab[j]``. The paper
        uses normalised counts: divide each row by its sum (a few reviews may have a
        small total).
    vocab : list of str
        The words, by decreasing score, so ``vocab[:k]`` is the top-``k`` vocabulary.
    ratings : ndarray of shape (5006,), float64
        The normalised rating in [0, 1], the regression target.
    authors : ndarray of shape (5006,), str
        The critic of each review (one of :data:`MOVIE_AUTHORS`).

    Raises
    ------
    FileNotFoundError
        If the data directory or one of the eight files is missing.
    ValueError
        If a file's SHA-256 differs from the published one, a ``subj`` and ``rating`` file
        disagree on their number of lines, or ``n_words`` is too large.

    Examples
    --------
    >>> from streamsc.datasets import load_movie_scale
    >>> counts, vocab, ratings, authors = load_movie_scale()  # doctest: +SKIP
    >>> counts.shape, vocab[:4], round(float(ratings.mean()), 3)  # doctest: +SKIP
    ((5006, 5000), ['the', ',', '.', 'a'], 0.581)
    """
    from sklearn.feature_extraction.text import TfidfTransformer

    n_words = validation.check_int("n_words", n_words, low=1)
    if n_words > _MOVIE_N_TOKENS:
        raise ValueError(
            f"n_words must be <= {_MOVIE_N_TOKENS} (the number of distinct tokens), "
            f"got {n_words}"
        )
    root = resolve_data_dir(data_dir)
    docs, ratings, authors = [], [], []
    for author in MOVIE_AUTHORS:
        base = f"movie_scale/scaledata/{author}/"
        subj = _data_file(root, f"{base}subj.{author}")
        rating = _data_file(root, f"{base}rating.{author}")
        lines = subj.read_text(encoding="ascii").splitlines()
        values = [float(s) for s in rating.read_text(encoding="ascii").splitlines()]
        if len(lines) != len(values):
            raise ValueError(
                f"{str(subj)!r} has {len(lines)} lines but {str(rating)!r} has {len(values)}"
            )
        docs.extend(lines)
        ratings.extend(values)
        authors.extend([author] * len(lines))
    counts, words = _count_matrix(docs)
    score = np.asarray(TfidfTransformer().fit_transform(counts).sum(axis=0)).ravel()
    # words are in alphabetical order, so a stable sort on -score breaks ties alphabetically
    keep = np.argsort(-score, kind="stable")[:n_words]
    counts = counts[:, keep].tocsr()
    counts.sort_indices()
    return counts, [str(w) for w in words[keep]], np.asarray(ratings), np.asarray(authors)
