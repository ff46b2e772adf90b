"""Saving and loading streamsc models: :func:`save` (``streamsc.save``) and :func:`load`
(``streamsc.load``). A model file holds arrays and plain data only: loading one runs no code.

A model file is a small header followed by a payload::

    magic            8 bytes   b"STREAMSC"
    format version   4 bytes   unsigned big-endian integer (this module writes FORMAT_VERSION)
    version length   2 bytes   unsigned big-endian integer n
    streamsc version n bytes   ASCII, the ``streamsc.__version__`` that wrote the file
    payload length   8 bytes   unsigned big-endian integer
    checksum         32 bytes  SHA-256 of the payload
    payload                    a ZIP archive (members stored, not compressed):
                                 model.json      the JSON document below
                                 arrays/<i>.npy  one NumPy array each (no object dtype)

The JSON document is ``{"format": "streamsc-model", "class": ..., "streamsc_version": ...,
"classes": [...], "n_arrays": ..., "state": ...}``: ``state`` is the estimator as a tree of
typed nodes (see :mod:`streamsc._codec`) -- its constructor parameters and fitted state
(``__dict__``), and those of the objects it holds (the coder's feature names, its learner's
basis, counters and running sums, its last code, an amortised encoder, the heads and the
class labels, the scikit-learn wrapper's fitted attributes), with ``None``, ``bool``,
``int``, ``str`` and finite ``float`` as JSON values and everything else tagged with its type
(tuples, dicts with typed keys in order, NumPy scalars and arrays, numpy RNG states, ...), so
feature names and labels of any of those types come back as they were. The encoder is
generic over the objects' ``__dict__``: new state is covered without new code, and a value of
a type it does not know raises ``TypeError`` when saving, before any file is touched.

A class is named by a stable name from a whitelist: the streamsc estimators and the classes
they hold (registered by :mod:`streamsc._base`), or, for river steps, a module and class name
inside the ``river`` namespace that is a subclass of ``river.base.Base`` (and river's
``VectorDict``). Objects are rebuilt without calling their constructors (``__new__``, then
their ``__dict__``), arrays are read with ``allow_pickle=False``, and anything else -- an
unknown class, a pickled array, a payload that is not such an archive -- is refused with a
``ValueError`` naming the file.

:func:`load` tells a file that is not a streamsc model, one written by a newer format, and
one that was truncated or corrupted apart, and says which, naming the file. A model saved in
the middle of a stream, loaded and fed the rest of the stream ends bit-identical to the run
that was never interrupted.

Format version 1 was a header and checksum around a pickle, which can run code when
loaded: :func:`load` refuses such files unless called with ``allow_pickle=True`` (for a file
you trust; save the model again to convert it).
"""

import hashlib
import io
import os
import pickle

from . import _base
from . import _codec, _model_file

__all__ = ["FORMAT_VERSION", "MAGIC", "load", "save"]

#: first bytes of every streamsc model file
MAGIC = _model_file.MAGIC

#: version of the file layout written by :func:`save`; :func:`load` reads this one (and
#: version 1, a pickle, only with ``allow_pickle=True``)
FORMAT_VERSION = _model_file.FORMAT_VERSION

#: the river containers :func:`save` takes as the model (their steps may be any river
#: estimator whose state the encoder knows, and streamsc estimators)
_RIVER_CONTAINERS = ("river.compose.pipeline.Pipeline", "river.compose.union.TransformerUnion")


def _qualified(t):
    return f"{t.__module__}.{t.__qualname__}"


def _is_model(obj):
    if isinstance(obj, _base.StreamscEstimator):
        return True
    return any(_qualified(t) in _RIVER_CONTAINERS for t in type(obj).__mro__)


def save(model, path):
    """Save a streamsc estimator, or a river ``Pipeline``/``TransformerUnion`` holding
    streamsc estimators and river's own steps, to ``path`` (JSON and NumPy arrays; see the
    module docstring). The file is written to a unique temporary name in the same directory,
    flushed and fsynced, then renamed over ``path`` (and the directory fsynced), so an
    interrupted save never leaves a half-written model under ``path`` and concurrent saves
    do not collide; the temporary is removed on any error. Saving through a symlink writes
    the link's target.

    River steps are saved by their ``__dict__``, through the same typed encoder: this
    covers river estimators whose state is plain data, dicts (``defaultdict`` with a builtin
    factory, ``Counter``, ``OrderedDict``), NumPy values, ``VectorDict`` and other river
    objects (optimisers, schedulers, losses, initialisers), such as ``StandardScaler``,
    ``MinMaxScaler``, ``LogisticRegression`` and ``LinearRegression``. A step holding a
    function, a lambda, a class or any other type (``FuncTransformer``, a ``defaultdict``
    with a ``functools.partial`` factory, a step from outside river and streamsc...) cannot
    be saved: ``TypeError``, naming where it is.

    Parameters
    ----------
    model : streamsc estimator, or river Pipeline or TransformerUnion
        The model (SparseCoder, SparseCodingClassifier, SparseCodingRegressor,
        SparseCodingTransformer, or a pipeline of them and river steps), at any point of its
        stream.
    path : str or os.PathLike
        The file to write (replaced if it exists).

    Raises
    ------
    TypeError
        If ``model`` is not one of those, or holds a value a model file cannot (then no
        file is written).

    Examples
    --------
    >>> import os, tempfile
    >>> import streamsc
    >>> from streamsc import SparseCoder
    >>> coder = SparseCoder(n_components=2, seed=0)
    >>> coder.learn_one({"a": 1.0, "b": 0.5})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "coder.streamsc")
    ...     streamsc.save(coder, path)              # or coder.save(path)
    ...     again = streamsc.load(path)
    >>> again.basis_.equals(coder.basis_)
    True
    """
    if not _is_model(model):
        raise TypeError(
            "model must be a streamsc estimator (or a river Pipeline or TransformerUnion), "
            f"got {type(model).__name__}"
        )
    _base.save_model(model, path)


def _read_header(data, where):
    """(format version, streamsc version, payload) of a model file's bytes."""
    if data[: len(MAGIC)] != MAGIC:
        raise ValueError(
            f"{where} is not a streamsc model file (it does not start with {MAGIC!r})"
        )
    buf = io.BytesIO(data)
    buf.seek(len(MAGIC))
    fixed = buf.read(_model_file.FIXED.size)
    if len(fixed) < _model_file.FIXED.size:
        raise ValueError(f"{where} is truncated: the header ends early")
    fmt, n_version = _model_file.FIXED.unpack(fixed)
    if fmt > FORMAT_VERSION:
        raise ValueError(
            f"{where} has model file format version {fmt}, newer than the version "
            f"{FORMAT_VERSION} this streamsc reads: upgrade streamsc to load it"
        )
    if fmt < 1:
        raise ValueError(f"{where} is corrupt: invalid format version {fmt}")
    version = buf.read(n_version)
    tail = buf.read(_model_file.TAIL.size)
    if len(version) < n_version or len(tail) < _model_file.TAIL.size:
        raise ValueError(f"{where} is truncated: the header ends early")
    n_payload, digest = _model_file.TAIL.unpack(tail)
    payload = buf.read()
    written_by = version.decode("ascii", errors="replace")
    if len(payload) < n_payload:
        raise ValueError(
            f"{where} is truncated: the payload has {len(payload)} of its {n_payload} bytes "
            f"(written by streamsc {written_by})"
        )
    if len(payload) > n_payload or hashlib.sha256(payload).digest() != digest:
        raise ValueError(
            f"{where} is corrupt: the payload does not match its SHA-256 checksum "
            f"(written by streamsc {written_by})"
        )
    return fmt, written_by, payload


#: classes that moved since format-1 files were written: (module, name) in the pickle ->
#: (module, name) now (``streamsc._online`` was split into ``_params``, ``_features`` and
#: ``_learner``)
_MOVED = {
    ("streamsc._online", "Learner"): ("streamsc._learner", "Learner"),
    ("streamsc._online", "Config"): ("streamsc._params", "Config"),
    ("streamsc._online", "Features"): ("streamsc._features", "Features"),
}


class _Unpickler(pickle.Unpickler):
    """A format-1 payload's unpickler that finds the classes of :data:`_MOVED` where they
    are now."""

    def find_class(self, module, name):
        module, name = _MOVED.get((module, name), (module, name))
        return super().find_class(module, name)


def _load_pickle(payload, where):
    try:
        model = _Unpickler(io.BytesIO(payload)).load()
    except Exception as exc:
        raise ValueError(
            f"{where} is corrupt: its payload does not unpickle ({type(exc).__name__}: {exc})"
        ) from exc
    if not _is_model(model):
        raise ValueError(
            f"{where} does not hold a streamsc model (it holds a {type(model).__name__})"
        )
    return model


def _classes(document, where):
    """The registry, once the modules of the estimators the document names are imported."""
    names = document.get("classes")
    if type(names) is not list or any(type(name) is not str for name in names):
        raise _codec.Corrupt("its document has no list of classes")
    import importlib

    for name in names:
        module = _base.ESTIMATORS.get(name)
        if module is not None and name not in _base.registered_classes():
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise ValueError(
                    f"{where} holds a {name}, which needs a package that is not installed "
                    f"({exc})"
                ) from exc
    classes = _base.registered_classes()
    unknown = [name for name in names if name not in classes]
    if unknown:
        raise ValueError(
            f"{where} names the unknown class(es) {', '.join(map(repr, unknown))}: a model "
            "file may only hold streamsc's estimators and river's"
        )
    return classes


def load(path, *, allow_pickle=False):
    """Load a model written by :func:`save` (or an estimator's ``save`` method).

    Loading runs no code from the file: the model is rebuilt from its JSON document and
    arrays (module docstring). Files of format version 1 (streamsc's older pickle files) are
    refused, as a pickle can run code when loaded, unless ``allow_pickle=True`` is given:
    do that only for a file you trust, then save the model again to convert it.

    Parameters
    ----------
    path : str or os.PathLike
        The model file.
    allow_pickle : bool
        Also read format version 1 (a pickle). Default False.

    Returns
    -------
    The estimator (or river pipeline), in the state it was saved in: feeding it the rest of
    a stream gives bit-identically the model that was never saved.

    Raises
    ------
    ValueError
        Naming the file, if it is not a streamsc model file, was written by a newer format
        version than this streamsc reads, is truncated or corrupt (length or SHA-256
        checksum mismatch, or a payload that is not a model document), names a class
        outside the whitelist, or is a pickle file (format 1) without ``allow_pickle=True``.

    Examples
    --------
    >>> import os, tempfile
    >>> import streamsc
    >>> model = streamsc.SparseCodingRegressor(coder=streamsc.SparseCoder(n_components=2, seed=0))
    >>> model.learn_one({"a": 1.0, "b": -0.5}, 2.0)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "model.streamsc")
    ...     model.save(path)
    ...     again = streamsc.load(path)
    ...     with open(path, "wb") as f:
    ...         _ = f.write(b"hello")
    ...     streamsc.load(path)
    Traceback (most recent call last):
    ...
    ValueError: ... is not a streamsc model file (it does not start with b'STREAMSC')
    >>> again.predict_one({"a": 1.0, "b": -0.5}) == model.predict_one({"a": 1.0, "b": -0.5})
    True
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    where = f"{path!r}"
    fmt, written_by, payload = _read_header(data, where)
    if fmt == 1:
        if allow_pickle is not True:
            raise ValueError(
                f"{where} is a model file of format version 1 (written by streamsc "
                f"{written_by}): a pickle, which can run code when loaded. Load it with "
                "streamsc.load(path, allow_pickle=True) only if you trust the file, then "
                "save the model again to convert it"
            )
        return _load_pickle(payload, where)
    try:
        document, arrays = _model_file.read_payload(payload)
        if document.get("format") != _model_file.DOCUMENT:
            raise _codec.Corrupt("its document is not a streamsc model document")
        classes = _classes(document, where)
        model = _codec.Decoder(arrays, classes).decode(document.get("state"))
    except _codec.Corrupt as exc:
        raise ValueError(f"{where} is corrupt: {exc}") from None
    except (KeyError, TypeError, AttributeError, IndexError, ValueError,
            RecursionError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(where):
            raise
        raise ValueError(
            f"{where} is corrupt: its document does not describe a model "
            f"({type(exc).__name__}: {exc})"
        ) from None
    if not _is_model(model):
        raise ValueError(
            f"{where} does not hold a streamsc model (it holds a {type(model).__name__})"
        )
    return model
