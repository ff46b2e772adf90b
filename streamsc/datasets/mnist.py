"""MNIST handwritten digits (the paper's Section 6.3.1, Tables 1-3): :func:`load_mnist`,
:func:`mnist_train_validation`."""

import gzip

import numpy as np

from .. import _validation as validation
from ._files import _data_file, resolve_data_dir

__all__ = ["load_mnist", "mnist_train_validation"]

_MNIST_FILES = {
    "train": ("mnist/train-images-idx3-ubyte.gz", "mnist/train-labels-idx1-ubyte.gz"),
    "test": ("mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz"),
}
_MNIST_N = {"train": 60000, "test": 10000}

#: the idx files' magic numbers: unsigned bytes in 3 dimensions (images), in 1 (labels)
_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049

#: the largest pixel value (``as_float=True`` divides by it)
_PIXEL_MAX = 255.0


#: MNIST geometry: 28x28 field, digits scaled so the longer side of the ink box is 20 pixels,
#: centre of mass placed at pixel (14, 14) (row, column; 0-based pixel indices)
_SIDE = 28
_BOX = 20
_CENTRE = 14.0


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
    validation.check_choice("split", split, tuple(_MNIST_FILES))
    as_float = validation.check_bool("as_float", as_float)
    root = resolve_data_dir(data_dir)
    images_rel, labels_rel = _MNIST_FILES[split]
    images_path = _data_file(root, images_rel)
    labels_path = _data_file(root, labels_rel)
    X = _read_idx(images_path, _IMAGES_MAGIC, (_SIDE, _SIDE)).reshape(-1, _SIDE * _SIDE)
    y = _read_idx(labels_path, _LABELS_MAGIC, ()).astype(np.int64)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"{images_rel} has {X.shape[0]} images but {labels_rel} {y.shape[0]}")
    if as_float:
        X = X / _PIXEL_MAX
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
    n_validation = validation.check_int("n_validation", n_validation, low=1)
    if n_validation >= _MNIST_N["train"]:
        raise ValueError(
            f"n_validation must be < {_MNIST_N['train']} (the training set size), "
            f"got {n_validation}"
        )
    X, y = load_mnist(data_dir, "train", as_float=as_float)
    cut = X.shape[0] - n_validation
    return X[:cut], y[:cut], X[cut:], y[cut:]
