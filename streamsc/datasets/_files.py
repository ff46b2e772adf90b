"""The data directory and its files: :func:`resolve_data_dir`, and every file a loader reads
checked against its published SHA-256 once per process (per path, size and modification
time)."""

import hashlib
import os
from pathlib import Path

#: environment variable naming the data directory when no ``data_dir`` is passed
ENV_VAR = "STREAMSC_DATA"

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


#: bytes read at a time when hashing a data file
_CHUNK = 1 << 20


def _sha256(path, chunk=_CHUNK):
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
