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

One module per data set (:mod:`~streamsc.datasets.mnist`, :mod:`~streamsc.datasets.ocr_letters`,
:mod:`~streamsc.datasets.movie_scale`) and the data directory's (``_files``); every loader
is importable from here. This package is not imported by ``import streamsc``; use
``from streamsc import datasets``.
"""

from ._files import ENV_VAR, resolve_data_dir
from .mnist import load_mnist, mnist_train_validation
from .movie_scale import MOVIE_AUTHORS, load_movie_scale
from .ocr_letters import load_ocr_letters, ocr_letters_split

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
