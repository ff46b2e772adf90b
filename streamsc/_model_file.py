"""The model file around the encoded state (:mod:`streamsc._codec`): a header (magic bytes,
format version, streamsc version, payload length and SHA-256) and a payload, a ZIP archive
(stored, not compressed) of ``model.json`` and ``arrays/<i>.npy``; written atomically."""

import hashlib
import io
import json
import os
import struct
import tempfile
import zipfile

import numpy as np

from ._codec import Corrupt, Encoder

#: first bytes of every streamsc model file
MAGIC = b"STREAMSC"

#: version of the file layout written by :func:`write`: 1 was a pickle, 2 is JSON + arrays
FORMAT_VERSION = 2

#: ``format`` of the JSON document
DOCUMENT = "streamsc-model"

#: a new model file's permissions (``rw-r--r--``), and the bits of a mode that are permissions
_NEW_FILE_MODE = 0o644
_PERMISSION_BITS = 0o777

FIXED = struct.Struct(">IH")  # format version, length of the streamsc version string
TAIL = struct.Struct(">Q32s")  # payload length, sha256 of the payload


def payload(document, arrays):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("model.json", json.dumps(document, ensure_ascii=True, allow_nan=False))
        for i, a in enumerate(arrays):
            with zf.open(f"arrays/{i}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, a, allow_pickle=False)
    return buf.getvalue()


def read_payload(data):
    """(document, arrays) of a payload; raises Corrupt."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise Corrupt(f"its payload is not a model archive ({exc})") from None
    with zf:
        infos = {info.filename: info for info in zf.infolist()}
        if any(info.compress_type != zipfile.ZIP_STORED for info in infos.values()):
            raise Corrupt("its archive has compressed members")
        if "model.json" not in infos:
            raise Corrupt("its archive has no model.json")
        try:
            document = json.loads(zf.read("model.json").decode("utf-8"),
                                  parse_constant=_no_constant)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise Corrupt(f"its model.json is not JSON ({type(exc).__name__}: {exc})") from None
        n = document.get("n_arrays") if isinstance(document, dict) else None
        if type(n) is not int or n < 0 or len(infos) != n + 1:
            raise Corrupt("its archive's members do not match its document")
        arrays = []
        for i in range(n):
            name = f"arrays/{i}.npy"
            if name not in infos:
                raise Corrupt(f"its archive has no {name}")
            try:
                with zf.open(name) as f:
                    arrays.append(np.lib.format.read_array(f, allow_pickle=False))
            except Exception as exc:  # a pickled (object) array, a short or bad one
                raise Corrupt(f"its {name} is not a plain array "
                              f"({type(exc).__name__}: {exc})") from None
    return document, arrays


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def header(payload_bytes, version):
    version = version.encode("ascii")
    return (MAGIC + FIXED.pack(FORMAT_VERSION, len(version)) + version
            + TAIL.pack(len(payload_bytes), hashlib.sha256(payload_bytes).digest()))


def _remove_stale_temporaries(directory, name):
    """Remove the temporaries earlier saves to ``name`` left behind when their process was
    killed mid-save (``.<name>.<pid>.<random>.tmp`` whose process no longer exists). Those
    of live processes, this one included (another thread may be saving), are kept."""
    prefix = f".{name}."
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            continue
        pid = entry[len(prefix):].split(".", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        try:
            os.remove(os.path.join(directory, entry))
        except OSError:
            pass


def _alive(pid):
    """Whether a process ``pid`` exists (on Windows, where ``os.kill`` would end it, assume
    it does)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True
    return True


def write_atomic(path, chunks):
    """Write ``chunks`` to ``path`` through a unique temporary in the same directory
    (flushed, fsynced, renamed over ``path``, directory fsynced); the temporary is removed on
    any error. Through a symlink, the link's target is written."""
    path = os.path.realpath(os.fspath(path))
    directory, name = os.path.split(path)
    directory = directory or "."
    _remove_stale_temporaries(directory, name)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.{os.getpid()}.", suffix=".tmp", dir=directory)
    try:
        try:  # mkstemp makes the file 0600: keep the mode of the file replaced, else 0644
            mode = os.stat(path).st_mode & _PERMISSION_BITS
        except OSError:
            mode = _NEW_FILE_MODE
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    try:  # the rename itself survives a crash once the directory is on disk
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - a platform without directory descriptors
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dfd)


def write(obj, path, names, version, top):
    """Encode ``obj`` (TypeError before any file is touched if it holds something a model
    file cannot) and write it to ``path``. ``top``: the name of its class in the document."""
    enc = Encoder(names)
    state = enc.encode(obj)
    document = {"format": DOCUMENT, "class": top, "streamsc_version": version,
                "classes": sorted(enc.used), "n_arrays": len(enc.arrays), "state": state}
    body = payload(document, enc.arrays)
    write_atomic(path, [header(body, version), body])
