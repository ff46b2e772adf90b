"""Saving and loading streamsc models: :func:`save` and :func:`load` (``streamsc.load``).

A model file is a small header followed by the pickled estimator::

    magic           8 bytes   b"STREAMSC"
    format version  4 bytes   unsigned big-endian integer (this module writes FORMAT_VERSION)
    version length  2 bytes   unsigned big-endian integer n
    streamsc version n bytes  ASCII, the ``streamsc.__version__`` that wrote the file
    payload length  8 bytes   unsigned big-endian integer
    checksum        32 bytes  SHA-256 of the payload
    payload                   pickle of the estimator (protocol 5)

so :func:`load` tells a file that is not a streamsc model, one written by a newer format,
and one that was truncated or corrupted apart, and says which, naming the file. Every
estimator state is plain Python and NumPy (no compiled closures), so a model saved in the
middle of a stream, loaded and fed the rest of the stream ends bit-identical to the run that
was never interrupted. Plain :mod:`pickle` works too; this format adds the checks.

Like any pickle, a model file can run code when loaded: load only files you trust.
"""

import hashlib
import io
import os
import pickle
import struct
import tempfile

__all__ = ["FORMAT_VERSION", "MAGIC", "load", "save"]

#: first bytes of every streamsc model file
MAGIC = b"STREAMSC"

#: version of the file layout written by :func:`save`; :func:`load` reads this and older ones
FORMAT_VERSION = 1

_FIXED = struct.Struct(">IH")  # format version, length of the streamsc version string
_TAIL = struct.Struct(">Q32s")  # payload length, sha256 of the payload


def _estimator_types():
    """The classes a model file may hold (the scikit-learn wrapper only if importable)."""
    from .classifier import SparseCodingClassifier
    from .regressor import SparseCodingRegressor
    from .sparse_coder import SparseCoder

    types = [SparseCoder, SparseCodingClassifier, SparseCodingRegressor]
    try:
        from .sklearn import SparseCodingTransformer
    except ImportError:  # pragma: no cover - scikit-learn not installed
        pass
    else:
        types.append(SparseCodingTransformer)
    return tuple(types)


def save(model, path):
    """Save a streamsc estimator to ``path`` (header, checksum and pickle; see the module
    docstring). The file is written to a unique temporary name in the same directory,
    flushed and fsynced, then renamed over ``path``, so an interrupted save never leaves a
    half-written model under ``path`` and concurrent saves do not collide; the temporary is
    removed on any error. Saving through a symlink writes the link's target.

    Parameters
    ----------
    model : SparseCoder, SparseCodingClassifier, SparseCodingRegressor or SparseCodingTransformer
        The model, at any point of its stream.
    path : str or os.PathLike
        The file to write (replaced if it exists).

    Raises
    ------
    TypeError
        If ``model`` is not a streamsc estimator.

    Examples
    --------
    >>> import os, tempfile
    >>> import streamsc
    >>> from streamsc import SparseCoder
    >>> from streamsc.persistence import save
    >>> coder = SparseCoder(n_components=2, seed=0)
    >>> coder.learn_one({"a": 1.0, "b": 0.5})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "coder.streamsc")
    ...     save(coder, path)              # or coder.save(path)
    ...     again = streamsc.load(path)
    >>> again.basis_.equals(coder.basis_)
    True
    """
    if not isinstance(model, _estimator_types()):
        raise TypeError(
            f"model must be a streamsc estimator, got {type(model).__name__}"
        )
    from . import __version__

    payload = pickle.dumps(model, protocol=5)
    version = __version__.encode("ascii")
    header = (MAGIC + _FIXED.pack(FORMAT_VERSION, len(version)) + version
              + _TAIL.pack(len(payload), hashlib.sha256(payload).digest()))
    # through a symlink: write the link's target, keep the link
    path = os.path.realpath(os.fspath(path))
    directory, name = os.path.split(path)
    # a unique temporary per call, in the target's directory (so the rename is atomic)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory or ".")
    try:
        try:  # mkstemp makes the file 0600: keep the mode of the file replaced, else 0644
            mode = os.stat(path).st_mode & 0o777
        except OSError:
            mode = 0o644
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def load(path):
    """Load a model written by :func:`save` (or an estimator's ``save`` method).

    Parameters
    ----------
    path : str or os.PathLike
        The model file.

    Returns
    -------
    The estimator, in the state it was saved in: feeding it the rest of a stream gives
    bit-identically the model that was never saved.

    Raises
    ------
    ValueError
        Naming the file, if it is not a streamsc model file, was written by a newer format
        version than this streamsc reads, or is truncated or corrupt (length or SHA-256
        checksum mismatch, or a payload that does not unpickle to a streamsc estimator).

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
    if data[: len(MAGIC)] != MAGIC:
        raise ValueError(
            f"{where} is not a streamsc model file (it does not start with {MAGIC!r})"
        )
    buf = io.BytesIO(data)
    buf.seek(len(MAGIC))
    fixed = buf.read(_FIXED.size)
    if len(fixed) < _FIXED.size:
        raise ValueError(f"{where} is truncated: the header ends early")
    fmt, n_version = _FIXED.unpack(fixed)
    if fmt > FORMAT_VERSION:
        raise ValueError(
            f"{where} has model file format version {fmt}, newer than the version "
            f"{FORMAT_VERSION} this streamsc reads: upgrade streamsc to load it"
        )
    if fmt < 1:
        raise ValueError(f"{where} is corrupt: invalid format version {fmt}")
    version = buf.read(n_version)
    tail = buf.read(_TAIL.size)
    if len(version) < n_version or len(tail) < _TAIL.size:
        raise ValueError(f"{where} is truncated: the header ends early")
    n_payload, digest = _TAIL.unpack(tail)
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
    try:
        model = pickle.loads(payload)
    except Exception as exc:
        raise ValueError(
            f"{where} is corrupt: its payload does not unpickle ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(model, _estimator_types()):
        raise ValueError(
            f"{where} does not hold a streamsc model (it holds a {type(model).__name__})"
        )
    return model
