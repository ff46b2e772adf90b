"""Taskar's handwritten lowercase letters (the paper's Section 6.3.2, Table 5):
:func:`load_ocr_letters`, :func:`ocr_letters_split`."""

import functools

import numpy as np
from scipy import ndimage

from .. import _validation as validation
from ._files import _data_file, resolve_data_dir
from .mnist import _BOX, _CENTRE, _SIDE

__all__ = ["load_ocr_letters", "ocr_letters_split"]


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


#: 'frame' framing: the 16x8 frame's scale factor (to 20x10, the MNIST ink box's height)
_FRAME_ZOOM = _BOX / 16


def _frame_letters(images):
    """'frame': the whole 16x8 frame scaled x1.25 (bilinear) to 20x10 and centred."""
    n, h, w = images.shape
    zh, zw = int(np.floor(h * _FRAME_ZOOM + 0.5)), int(np.floor(w * _FRAME_ZOOM + 0.5))
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
    validation.check_choice("framing", framing, ("mnist", "frame"))
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
    test_folds = [validation.check_int("test_folds", f) for f in test_folds]
    validation_folds = [validation.check_int("validation_folds", f) for f in validation_folds]
    common = sorted(set(test_folds) & set(validation_folds))
    if common:
        raise ValueError(f"test_folds and validation_folds overlap on folds {common}")
    is_test = np.isin(fold, test_folds)
    is_val = np.isin(fold, validation_folds)
    as_idx = lambda mask: np.flatnonzero(mask).astype(np.int64)  # noqa: E731
    return as_idx(~(is_test | is_val)), as_idx(is_val), as_idx(is_test)
