"""Loaders for the three public data sets of the paper's experiments.

* MNIST handwritten digits (Section 6.3.1, Tables 1-3) — :func:`load_mnist`,
  :func:`mnist_train_validation`;
* Taskar's handwritten lowercase letters (Section 6.3.2, Table 5) — :func:`load_ocr_letters`,
  :func:`ocr_letters_split`;
* Pang & Lee's movie scale data v1.0 (Section 6.3.3, Table 6) — :func:`load_movie_scale`.

The music genre data of the paper's Appendix E was never published and has no loader.

Nothing is downloaded. Every loader reads from a data directory laid out as::

    <data_dir>/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    <data_dir>/ocr_letters/letters.npz
    <data_dir>/movie_scale/scaledata/<author>/{subj,rating}.<author>

resolved by :func:`resolve_data_dir`: the ``data_dir`` argument, else the environment
variable ``STREAMSC_DATA``. Each file's SHA-256 is checked against the published value the
first time a process reads it (the result is remembered per path, size and modification
time, so later loads in the same process skip the hash); a mismatch raises ``ValueError``
naming the file. Nothing is cached on disk.

This module is not imported by ``import streamsc``; use ``from streamsc import datasets``.
"""

import functools
import gzip
import hashlib
import itertools
import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy import ndimage

from . import _validation as v

__all__ = [
    "ENV_VAR",
    "MOVIE_AUTHORS",
    "load_mnist",
    "load_movie_scale",
    "load_ocr_letters",
    "mnist_train_validation",
    "ocr_letters_split",
    "resolve_data_dir",
]

#: environment variable naming the data directory when no ``data_dir`` is passed
ENV_VAR = "STREAMSC_DATA"

#: the four critics of the movie scale data, in the (sorted) order their reviews are returned
MOVIE_AUTHORS = ("Dennis+Schwartz", "James+Berardinelli", "Scott+Renshaw", "Steve+Rhodes")

#: SHA-256 of every file a loader reads, relative to the data directory (values from the
#: data README; the MNIST training images are the rebuilt ``.gz``, whose sum is listed there)
_SHA256 = {
    "mnist/train-images-idx3-ubyte.gz": (
        "12bacf187eba4f770a04d97be5dbaad9289fe5d89a89729b6af3255c8bbfa9e1"
    ),
    "mnist/train-labels-idx1-ubyte.gz": (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
    ),
    "mnist/t10k-images-idx3-ubyte.gz": (
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
    ),
    "mnist/t10k-labels-idx1-ubyte.gz": (
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
    ),
    "ocr_letters/letters.npz": (
        "12671a5a5291736147291d7ba2f50b051e7109279cd89a7530ccf64f3d13a991"
    ),
    "movie_scale/scaledata/Dennis+Schwartz/rating.Dennis+Schwartz": (
        "b9057227d5b1324f49d5f402f1cad0ae472f3d130f35a24a5334ab7db6726be7"
    ),
    "movie_scale/scaledata/Dennis+Schwartz/subj.Dennis+Schwartz": (
        "cb26f952c091c510c786627a45a5af3fb5c87a986f9aa3eb7eef6e4ed1797a02"
    ),
    "movie_scale/scaledata/James+Berardinelli/rating.James+Berardinelli": (
        "91abefa233432a2b92a82e0cb40706bd38e48e1ce4165e7a16584a6ec1dd8ed0"
    ),
    "movie_scale/scaledata/James+Berardinelli/subj.James+Berardinelli": (
        "1b612ca24494cc675f5e58c1fc320501446da2ed2520a00edb3522b565640658"
    ),
    "movie_scale/scaledata/Scott+Renshaw/rating.Scott+Renshaw": (
        "cbe4f07da184e0c68a1051503c91c2474bb23c8d6b433e57d99dc2a8ae43760c"
    ),
    "movie_scale/scaledata/Scott+Renshaw/subj.Scott+Renshaw": (
        "c1b0b7b80fa4161053fee1125e7fb7bfba987fcfa08a8ab525504eff4c988cec"
    ),
    "movie_scale/scaledata/Steve+Rhodes/rating.Steve+Rhodes": (
        "bbbe28efbe998827cfe2737a25d19977091a2deea141461eb8e241ce6f5bc03d"
    ),
    "movie_scale/scaledata/Steve+Rhodes/subj.Steve+Rhodes": (
        "33ef24625d183f6f9ecf03f356e055e9ff998ac7773f48939a364e9900bbf10a"
    ),
}

#: (resolved path, size, mtime_ns) of every file whose checksum passed in this process
_VERIFIED = set()

_MNIST_FILES = {
    "train": ("mnist/train-images-idx3-ubyte.gz", "mnist/train-labels-idx1-ubyte.gz"),
    "test": ("mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz"),
}
_MNIST_N = {"train": 60000, "test": 10000}

#: distinct whitespace-separated tokens in the 5,006 ``subj`` lines (fixed by the checksums)
_MOVIE_N_TOKENS = 55449

#: MNIST geometry: 28x28 field, digits scaled so the longer side of the ink box is 20 pixels,
#: centre of mass placed at pixel (14, 14) (row, column; 0-based pixel indices)
_SIDE = 28
_BOX = 20
_CENTRE = 14.0


# --------------------------------------------------------------------------------------------
# data directory and files
# --------------------------------------------------------------------------------------------


def resolve_data_dir(data_dir=None):
    """The data directory: ``data_dir`` if given, else the ``STREAMSC_DATA`` variable.

    Parameters
    ----------
    data_dir : str or os.PathLike or None, default=None
        The folder holding ``mnist/``, ``ocr_letters/`` and ``movie_scale/``. ``None`` reads
        the environment variable ``STREAMSC_DATA`` (an empty value counts as unset).

    Returns
    -------
    pathlib.Path
        The directory, with ``~`` expanded. It is checked to exist; the files inside are
        checked by each loader.

    Raises
    ------
    TypeError
        If ``data_dir`` is neither ``None``, a string nor a path.
    FileNotFoundError
        If no directory is given and ``STREAMSC_DATA`` is unset (the message says to pass
        ``--data-dir`` or set ``STREAMSC_DATA``), or if the directory does not exist.

    Examples
    --------
    >>> import tempfile
    >>> from streamsc.datasets import resolve_data_dir
    >>> with tempfile.TemporaryDirectory() as d:
    ...     resolve_data_dir(d) == Path(d)
    True
    """
    source = "data_dir"
    if data_dir is None:
        data_dir = os.environ.get(ENV_VAR) or None
        source = f"the {ENV_VAR} environment variable"
        if data_dir is None:
            raise FileNotFoundError(
                "no data directory given: pass --data-dir (data_dir=... in Python) or set "
                f"the {ENV_VAR} environment variable to the folder holding mnist/, "
                "ocr_letters/ and movie_scale/"
            )
    if not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(
            f"data_dir must be a str, a path or None, got {data_dir!r} "
            f"({type(data_dir).__name__})"
        )
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"data directory {str(path)!r} (from {source}) does not exist or is not a "
            "directory"
        )
    return path


def _sha256(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _data_file(data_dir, relpath):
    """Absolute path of ``relpath`` inside ``data_dir``, checked to exist and to carry the
    published SHA-256 (hashed once per process per path, size and modification time)."""
    path = data_dir.joinpath(*relpath.split("/"))
    if not path.is_file():
        raise FileNotFoundError(
            f"data file {relpath!r} not found in data directory {str(data_dir)!r} "
            f"(looked for {str(path)!r}); see the data README for where to get it"
        )
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        digest = _sha256(path)
        if digest != _SHA256[relpath]:
            raise ValueError(
                f"checksum mismatch for data file {str(path)!r}: sha256 {digest}, expected "
                f"{_SHA256[relpath]} (corrupted or a different version of {relpath!r})"
            )
        _VERIFIED.add(key)
    return path


# --------------------------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------------------------


def _read_idx(path, magic, shape_tail):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = 1 + len(shape_tail)
    header = 4 + 4 * ndim
    dims = [int.from_bytes(raw[i : i + 4], "big") for i in range(0, header, 4)]
    if dims[0] != magic or tuple(dims[2:]) != shape_tail:
        raise ValueError(f"{str(path)!r} is not an idx file of shape (n, {shape_tail})")
    n = dims[1]
    arr = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if arr.size != n * int(np.prod(shape_tail, dtype=np.int64)):
        raise ValueError(f"{str(path)!r} holds {arr.size} bytes of data, header says {n} items")
    return arr.reshape((n,) + shape_tail)


def load_mnist(data_dir=None, split="train", *, as_float=False):
    """The MNIST handwritten digits, one flattened 28x28 image per row.

    Parameters
    ----------
    data_dir : str or os.PathLike or None, default=None
        The data directory (see :func:`resolve_data_dir`); the files are read from its
        ``mnist/`` folder.
    split : {"train", "test"}, default="train"
        The 60,000 training images or the 10,000 test images.
    as_float : bool, default=False
        ``False`` returns the raw ``uint8`` pixels 0-255 (47 MB for the training set);
        ``True`` returns ``float64`` pixels divided by 255, in [0, 1] (376 MB).

    Returns
    -------
    X : ndarray of shape (n, 784), uint8 or float64
        Row-major pixels (``X[i].reshape(28, 28)`` is image ``i``), 0 = background.
    y : ndarray of shape (n,), int64
        Digit labels 0-9.

    Raises
    ------
    FileNotFoundError
        If the data directory or one of the two files is missing.
    ValueError
        If a file's SHA-256 differs from the published one, or ``split`` is unknown.

    See Also
    --------
    mnist_train_validation : the paper's training / validation split.

    Examples
    --------
    >>> from streamsc.datasets import load_mnist
    >>> X, y = load_mnist(split="test")  # doctest: +SKIP
    >>> X.shape, X.dtype, y[:5]  # doctest: +SKIP
    ((10000, 784), dtype('uint8'), array([7, 2, 1, 0, 4]))
    """
    v.check_choice("split", split, tuple(_MNIST_FILES))
    as_float = v.check_bool("as_float", as_float)
    root = resolve_data_dir(data_dir)
    images_rel, labels_rel = _MNIST_FILES[split]
    images_path = _data_file(root, images_rel)
    labels_path = _data_file(root, labels_rel)
    X = _read_idx(images_path, 2051, (_SIDE, _SIDE)).reshape(-1, _SIDE * _SIDE)
    y = _read_idx(labels_path, 2049, ()).astype(np.int64)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"{images_rel} has {X.shape[0]} images but {labels_rel} {y.shape[0]}")
    if as_float:
        X = X / 255.0
    else:
        X = X.copy()  # writeable, owning its memory (frombuffer views are read-only)
    return X, y


def mnist_train_validation(data_dir=None, *, n_validation=10000, as_float=False):
    """MNIST's training set split the paper's way: the first ``60000 - n_validation`` images
    for training, the last ``n_validation`` for validation.

    The paper holds out 10,000 of the 60,000 training images to choose its parameters but
    does not say which; the last 10,000 is the usual choice (the test set stays untouched).

    Parameters
    ----------
    data_dir : str or os.PathLike or None, default=None
        The data directory (see :func:`resolve_data_dir`).
    n_validation : int, default=10000
        Number of images held out, taken from the end; between 1 and 59,999.
    as_float : bool, default=False
        As in :func:`load_mnist`.

    Returns
    -------
    X_train : ndarray of shape (60000 - n_validation, 784)
    y_train : ndarray of shape (60000 - n_validation,), int64
    X_val : ndarray of shape (n_validation, 784)
    y_val : ndarray of shape (n_validation,), int64
        Pixels as in :func:`load_mnist` (views into one array).

    Examples
    --------
    >>> from streamsc.datasets import mnist_train_validation
    >>> X_tr, y_tr, X_va, y_va = mnist_train_validation()  # doctest: +SKIP
    >>> X_tr.shape, X_va.shape  # doctest: +SKIP
    ((50000, 784), (10000, 784))
    """
    n_validation = v.check_int("n_validation", n_validation, low=1)
    if n_validation >= _MNIST_N["train"]:
        raise ValueError(
            f"n_validation must be < {_MNIST_N['train']} (the training set size), "
            f"got {n_validation}"
        )
    X, y = load_mnist(data_dir, "train", as_float=as_float)
    cut = X.shape[0] - n_validation
    return X[:cut], y[:cut], X[cut:], y[cut:]


# --------------------------------------------------------------------------------------------
# OCR letters
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _zoom_matrix(n_in, n_out):
    """(n_out, n_in) matrix of ``scipy.ndimage.zoom(order=1)`` along one axis from ``n_in``
    to ``n_out`` samples. Bilinear zoom is separable, so ``R_r @ img @ R_c.T`` equals
    ``ndimage.zoom(img, (n_out_r / n_in_r, n_out_c / n_in_c), order=1)``, and a whole stack
    of same-sized images is zoomed by two matrix products."""
    return ndimage.zoom(np.eye(n_in), (n_out / n_in, 1.0), order=1)


def _zoom_stack(images, H, W):
    """Bilinear zoom of every (h, w) image of the stack to (H, W), as float64."""
    _, h, w = images.shape
    return _zoom_matrix(h, H) @ images.astype(np.float64) @ _zoom_matrix(w, W).T


def _frame_letters(images):
    """'frame': the whole 16x8 frame scaled x1.25 (bilinear) to 20x10 and centred."""
    n, h, w = images.shape
    zh, zw = int(np.floor(h * 1.25 + 0.5)), int(np.floor(w * 1.25 + 0.5))
    z = _zoom_stack(images, zh, zw)
    top, left = (_SIDE - zh) // 2, (_SIDE - zw) // 2
    out = np.zeros((n, _SIDE, _SIDE))
    out[:, top : top + zh, left : left + zw] = z
    return out


def _mnist_letters(images):
    """'mnist': crop to the ink box, scale (bilinear) so its longer side is 20 px keeping the
    aspect ratio, put the centre of mass at pixel (14, 14), rounded to whole pixels as in
    MNIST, the box kept inside the 28x28 field. Vectorised over letters sharing a box size."""
    n = images.shape[0]
    ink = images > 0
    rows, cols = ink.any(axis=2), ink.any(axis=1)
    has_ink = rows.any(axis=1)
    r0 = rows.argmax(axis=1)
    r1 = rows.shape[1] - rows[:, ::-1].argmax(axis=1)
    c0 = cols.argmax(axis=1)
    c1 = cols.shape[1] - cols[:, ::-1].argmax(axis=1)
    h, w = r1 - r0, c1 - c0
    out = np.zeros((n, _SIDE, _SIDE))
    shapes = np.unique(np.stack([h, w], axis=1)[has_ink], axis=0)
    for hh, ww in shapes:
        idx = np.flatnonzero(has_ink & (h == hh) & (w == ww))
        scale = _BOX / max(hh, ww)
        H = max(1, int(np.floor(hh * scale + 0.5)))
        W = max(1, int(np.floor(ww * scale + 0.5)))
        crop = images[
            idx[:, None, None],
            r0[idx][:, None, None] + np.arange(hh)[None, :, None],
            c0[idx][:, None, None] + np.arange(ww)[None, None, :],
        ]
        z = _zoom_stack(crop, H, W)
        mass = z.sum(axis=(1, 2))
        com_r = (z.sum(axis=2) @ np.arange(H)) / mass
        com_c = (z.sum(axis=1) @ np.arange(W)) / mass
        top = np.clip(np.rint(_CENTRE - com_r), 0, _SIDE - H).astype(np.intp)
        left = np.clip(np.rint(_CENTRE - com_c), 0, _SIDE - W).astype(np.intp)
        out[
            idx[:, None, None],
            top[:, None, None] + np.arange(H)[None, :, None],
            left[:, None, None] + np.arange(W)[None, None, :],
        ] = z
    return out


def load_ocr_letters(data_dir=None, size=None, framing="mnist"):
    """Taskar's handwritten lowercase letters (52,152 letters from 6,877 words, 10 folds).

    Parameters
    ----------
    data_dir : str or os.PathLike or None, default=None
        The data directory (see :func:`resolve_data_dir`); reads ``ocr_letters/letters.npz``.
    size : {None, 28}, default=None
        ``None`` returns the original 16x8 binary images (128 pixels). ``28`` pads and scales
        them to MNIST's 28x28 field (784 pixels), as the paper does to code letters with an
        MNIST basis; how is set by ``framing``.
    framing : {"mnist", "frame"}, default="mnist"
        How a 16x8 letter becomes 28x28 (only used when ``size=28``). The paper says only
        "padded and scaled", so both readings are offered; say which one a result uses.

        * ``"mnist"`` (default) — MNIST's own recipe: crop to the bounding box of the ink,
          scale it (bilinear, ``scipy.ndimage.zoom(order=1)``) so its longer side is 20
          pixels keeping the aspect ratio, and translate it by whole pixels so its centre of
          mass is at pixel (14, 14) (row, column, 0-based), the same convention as the MNIST
          digits (whose centres of mass are (14.0, 14.0) on average, within half a pixel).
          A box that would leave the field is moved back inside it, so no ink is lost. The
          default because it matches the paper's "PCA" column better at small training
          sizes (see the data README: 49.3 / 64.6 / 70.0 / 76.3 / 79.2 % against the
          paper's 46.9 / 61.2 / 66.7 / 76.0 / 79.7 at 100 ... 20,000 labels).
        * ``"frame"`` — scale the whole 16x8 frame by 1.25 (bilinear) to 20x10 and centre it:
          rows 4-23, columns 9-18.

    Returns
    -------
    X : ndarray of shape (52152, 128) or (52152, 784), float64
        Pixels in [0, 1], row-major (``X[i].reshape(16, 8)`` or ``(28, 28)``), 0 = background.
    y : ndarray of shape (52152,), int64
        Letter 0-25 for a-z.
    fold : ndarray of shape (52152,), int64
        Cross-validation fold 0-9, assigned per word.
    word_index : ndarray of shape (52152,), int64
        0-based index of the letter's word; a word's letters are contiguous and in order.

    Raises
    ------
    FileNotFoundError
        If the data directory or ``letters.npz`` is missing.
    ValueError
        If the file's SHA-256 differs from the published one, or ``size`` / ``framing`` is
        not one of the values above.

    See Also
    --------
    ocr_letters_split : the training / validation / test folds.

    Examples
    --------
    >>> from streamsc.datasets import load_ocr_letters
    >>> X, y, fold, word = load_ocr_letters(size=28)  # doctest: +SKIP
    >>> X.shape, X.dtype  # doctest: +SKIP
    ((52152, 784), dtype('float64'))
    >>> "".join(chr(97 + c) for c in y[word == 0]), int(fold[0])  # doctest: +SKIP
    ('ommanding', 0)
    """
    if size is not None:
        if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)):
            raise TypeError(f"size must be None or 28, got {size!r} ({type(size).__name__})")
        if size != _SIDE:
            raise ValueError(f"size must be None or 28, got {size!r}")
    v.check_choice("framing", framing, ("mnist", "frame"))
    root = resolve_data_dir(data_dir)
    path = _data_file(root, "ocr_letters/letters.npz")
    with np.load(path, allow_pickle=False) as d:
        images = d["images"]
        y = d["letter"].astype(np.int64)
        fold = d["fold"].astype(np.int64)
        word_index = d["word_index"].astype(np.int64)
    n = images.shape[0]
    if size is None:
        X = images.reshape(n, -1).astype(np.float64)
    elif framing == "frame":
        X = _frame_letters(images).reshape(n, -1)
    else:
        X = _mnist_letters(images).reshape(n, -1)
    np.clip(X, 0.0, 1.0, out=X)
    return X, y, fold, word_index


def ocr_letters_split(fold, *, test_folds=(8, 9), validation_folds=(7,)):
    """Indices of the letters' training pool, validation set and test set, by fold.

    The protocol of the data README: test = folds 8-9, validation = fold 7, training pool
    = the other folds (0-6), from which labelled subsets of 100 ... 20,000 letters are drawn.
    Folds are assigned per word, so the three sets share no word.

    Parameters
    ----------
    fold : array-like of shape (n,), int
        The fold of every letter (the third output of :func:`load_ocr_letters`).
    test_folds : tuple of int, default=(8, 9)
    validation_folds : tuple of int, default=(7,)
        Must not overlap ``test_folds``.

    Returns
    -------
    train : ndarray of int64
        Indices of the letters in neither the test nor the validation folds, ascending.
    validation : ndarray of int64
    test : ndarray of int64

    Examples
    --------
    >>> import numpy as np
    >>> from streamsc.datasets import ocr_letters_split
    >>> fold = np.array([0, 0, 7, 8, 9, 3, 6, 7])
    >>> train, val, test = ocr_letters_split(fold)
    >>> train, val, test
    (array([0, 1, 5, 6]), array([2, 7]), array([3, 4]))
    """
    fold = np.asarray(fold)
    if fold.ndim != 1 or not np.issubdtype(fold.dtype, np.integer):
        raise ValueError(
            f"fold must be a 1-D integer array, got shape {fold.shape} and dtype {fold.dtype}"
        )
    test_folds = [v.check_int("test_folds", f) for f in test_folds]
    validation_folds = [v.check_int("validation_folds", f) for f in validation_folds]
    common = sorted(set(test_folds) & set(validation_folds))
    if common:
        raise ValueError(f"test_folds and validation_folds overlap on folds {common}")
    is_test = np.isin(fold, test_folds)
    is_val = np.isin(fold, validation_folds)
    as_idx = lambda mask: np.flatnonzero(mask).astype(np.int64)  # noqa: E731
    return as_idx(~(is_test | is_val)), as_idx(is_val), as_idx(is_test)


# --------------------------------------------------------------------------------------------
# movie scale data
# --------------------------------------------------------------------------------------------


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

    n_words = v.check_int("n_words", n_words, low=1)
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
