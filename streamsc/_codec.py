"""The typed encoder of a model's state into JSON plus NumPy arrays, and its decoder (the
file around them is :mod:`streamsc._model_file`; see :mod:`streamsc.persistence`).

No code runs on load: the payload is a ZIP archive (stored, not compressed) of one JSON
document, ``model.json``, and ``.npy`` arrays read with ``allow_pickle=False``; a class is
named in the document, never imported by an arbitrary name: streamsc classes by the stable
names of the registry :mod:`streamsc._base` passes in, river classes by module and qualified
name inside the ``river`` namespace only, and only subclasses of ``river.base.Base``.

This module imports no other streamsc module (the registry is an argument), so
``_model_file``, ``_base`` (the estimators' ``save``) and ``persistence`` (``load``) use it
without an import cycle.

Every node of the document is a JSON value: ``None``, ``bool``, ``int``, ``str`` and finite
``float`` stand for themselves; every other value is a JSON object ``{"$": kind, ...}``:
``float`` (non-finite, by its bits), ``tuple``, ``list``, ``set``, ``frozenset``, ``deque``,
``dict`` (``OrderedDict``, ``Counter``, ``defaultdict`` too; keys typed like values, order
kept), ``bytes``, ``ndarray`` and ``scalar`` (a NumPy scalar: a 0-d array), ``objarray`` (an
array of Python objects, such as scikit-learn's ``feature_names_in_``: its shape and its
elements as nodes), ``Generator`` and
``RandomState`` (NumPy RNGs: their bit generator's name and state), ``DataFrame`` (numeric
values, its index and columns as typed lists), ``builtin`` (a ``defaultdict`` factory among
``float``, ``int``, ...), ``river-class`` (a river estimator class as a value or
``defaultdict`` factory, such as ``river.stats.Min``), ``object`` (a registered streamsc class: its ``__dict__``), ``river``
(a river object: its ``__dict__``), ``river-reduce`` (river's ``VectorDict``: its constructor
arguments) and ``ref`` (an object met before: identity and cycles are kept, so a pipeline's
steps stay the objects its plan runs).
"""

import collections
import importlib
import math
import struct
import sys

import numpy as np

_BUILTIN_FACTORIES = {f.__name__: f for f in (float, int, bool, str, list, dict, set, tuple)}
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
_DICTS = {dict: "dict", collections.OrderedDict: "OrderedDict",
          collections.Counter: "Counter", collections.defaultdict: "defaultdict"}
_DICT_TYPES = {name: t for t, name in _DICTS.items()}


class Corrupt(Exception):
    """A payload that is not a model document (turned into a ValueError naming the file)."""


def _qualified(t):
    return f"{t.__module__}.{t.__qualname__}"


def _is_river(t):
    """Whether ``t`` is a river estimator class (river's own namespace, ``river.base.Base``)."""
    base = sys.modules.get("river.base")
    module = getattr(t, "__module__", "") or ""
    return (base is not None and (module == "river" or module.startswith("river."))
            and isinstance(t, type) and issubclass(t, base.Base))


def _is_vector_dict(t):
    return t.__module__.startswith("river.") and t.__qualname__ == "VectorDict"


def _check_plain_instance(x, where):
    """An object saved by its ``__dict__`` must have one and no other slots."""
    for klass in type(x).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        slots = (slots,) if isinstance(slots, str) else slots
        if any(s not in ("__dict__", "__weakref__") for s in slots):
            raise TypeError(f"cannot save {where}: {_qualified(type(x))} keeps state in "
                            "__slots__, which a model file does not hold")
    if not hasattr(x, "__dict__"):
        raise TypeError(f"cannot save {where}: {_qualified(type(x))} has no __dict__")


class Encoder:
    """One model's state to a JSON node plus a list of arrays. ``names``: registered class
    -> stable name."""

    def __init__(self, names):
        self.names = names
        self.arrays = []
        self.memo = {}  # id(object) -> its id in the document
        self.keep = []  # the objects of memo, alive until the end (ids stay unique)
        self.used = set()  # stable names of the streamsc classes met

    def _array(self, a, where):
        if a.dtype.hasobject:
            raise TypeError(f"cannot save {where}: an array of Python objects (dtype "
                            f"{a.dtype}) is not plain data")
        self.arrays.append(a)
        return len(self.arrays) - 1

    def _remember(self, x):
        n = len(self.keep)
        self.memo[id(x)] = n
        self.keep.append(x)
        return n

    def _seq(self, xs, where):
        return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(xs)]

    def _attrs(self, x, where):
        state = vars(x)
        for name in state:
            if type(name) is not str:
                raise TypeError(f"cannot save {where}: an attribute name {name!r} is not a str")
        return {name: self.encode(value, f"{where}.{name}") for name, value in state.items()}

    def encode(self, x, where="model"):
        t = type(x)
        if x is None or t is bool or t is str or t is int:
            return x
        if t is float:
            if math.isfinite(x):
                return x
            return {"$": "float", "bits": struct.pack(">d", x).hex()}
        if t is tuple:
            return {"$": "tuple", "v": self._seq(x, where)}
        if t is frozenset:
            return {"$": "frozenset", "v": self._seq(list(x), where)}
        if t is bytes:
            return {"$": "bytes", "hex": x.hex()}
        if isinstance(x, np.generic):
            return {"$": "scalar", "a": self._array(np.asarray(x), where)}
        if id(x) in self.memo:
            return {"$": "ref", "id": self.memo[id(x)]}
        if t is np.ndarray and x.dtype == object:  # such as sklearn's feature_names_in_
            n = self._remember(x)
            return {"$": "objarray", "id": n, "shape": list(x.shape),
                    "v": self._seq(x.ravel(order="C").tolist(), where)}
        if t is np.ndarray:
            return {"$": "ndarray", "id": self._remember(x), "a": self._array(x, where)}
        if t in _DICTS:
            node = {"$": "dict", "kind": _DICTS[t], "id": self._remember(x)}
            if t is collections.defaultdict:
                node["factory"] = self._factory(x.default_factory, f"{where}.default_factory")
            node["items"] = [[self.encode(k, f"{where} key {k!r}"),
                              self.encode(v, f"{where}[{k!r}]")] for k, v in x.items()]
            return node
        if t in (list, set):
            n = self._remember(x)
            return {"$": t.__name__, "id": n, "v": self._seq(x, where)}
        if t is collections.deque:
            n = self._remember(x)
            return {"$": "deque", "id": n, "maxlen": x.maxlen, "v": self._seq(x, where)}
        if t is np.random.Generator:
            bg = x.bit_generator
            name = type(bg).__name__
            if name not in _BIT_GENERATORS or type(bg) is not getattr(np.random, name):
                raise TypeError(f"cannot save {where}: bit generator {_qualified(type(bg))}")
            n = self._remember(x)
            return {"$": "Generator", "id": n, "bit_generator": name,
                    "state": self.encode(bg.state, f"{where}.bit_generator.state")}
        if t is np.random.RandomState:
            n = self._remember(x)
            return {"$": "RandomState", "id": n,
                    "state": self.encode(x.get_state(legacy=False), f"{where}.state")}
        pd = sys.modules.get("pandas")
        if pd is not None and t is pd.DataFrame:
            n = self._remember(x)
            return {"$": "DataFrame", "id": n,
                    "values": self.encode(x.to_numpy(), f"{where}.values"),
                    "index": self.encode(list(x.index), f"{where}.index"),
                    "columns": self.encode(list(x.columns), f"{where}.columns"),
                    "index_name": self.encode(x.index.name, f"{where}.index.name"),
                    "columns_name": self.encode(x.columns.name, f"{where}.columns.name")}
        if isinstance(x, type) and _is_river(x):  # a river class as a value
            return {"$": "river-class", "module": x.__module__, "qualname": x.__qualname__}
        name = self.names.get(t)
        if name is not None:
            _check_plain_instance(x, where)
            self.used.add(name)
            n = self._remember(x)
            return {"$": "object", "class": name, "id": n, "state": self._attrs(x, where)}
        if _is_river(t):
            _check_plain_instance(x, where)
            n = self._remember(x)
            return {"$": "river", "module": t.__module__, "qualname": t.__qualname__, "id": n,
                    "state": self._attrs(x, where)}
        if _is_vector_dict(t) and "river.base" in sys.modules:
            reduced = x.__reduce__()
            if not (isinstance(reduced, tuple) and len(reduced) == 2 and reduced[0] is t):
                raise TypeError(f"cannot save {where}: {_qualified(t)} reduces unexpectedly")
            n = self._remember(x)
            return {"$": "river-reduce", "module": t.__module__, "qualname": t.__qualname__,
                    "id": n, "args": self._seq(reduced[1], f"{where} argument")}
        raise TypeError(
            f"cannot save {where}: a {_qualified(t)} is not something a model file holds "
            "(plain values, NumPy arrays and RNGs, numeric DataFrames, streamsc's and river's "
            "estimators)"
        )

    def _factory(self, f, where):
        if f is None:
            return None
        if isinstance(f, type) and _BUILTIN_FACTORIES.get(f.__name__) is f:
            return {"$": "builtin", "name": f.__name__}
        if isinstance(f, type) and _is_river(f):  # such as river.stats.Min
            return {"$": "river-class", "module": f.__module__, "qualname": f.__qualname__}
        return self.encode(f, where)


class Decoder:
    """A JSON node and its arrays back to objects. ``classes``: stable name -> class."""

    def __init__(self, arrays, classes):
        self.arrays = arrays
        self.classes = classes
        self.memo = {}

    def _array(self, node):
        i = node["a"]
        if type(i) is not int or not 0 <= i < len(self.arrays):
            raise Corrupt(f"array reference {i!r} out of range")
        return self.arrays[i]

    def _define(self, node, obj):
        n = node["id"]
        if type(n) is not int or n in self.memo:
            raise Corrupt(f"bad object id {n!r}")
        self.memo[n] = obj
        return obj

    def _state(self, obj, state):
        if not isinstance(state, dict):
            raise Corrupt("an object's state is not a JSON object")
        obj.__dict__.update({name: self.decode(value) for name, value in state.items()})
        return obj

    def decode(self, node):
        if node is None or type(node) in (bool, int, float, str):
            return node
        if type(node) is list:
            raise Corrupt("a bare JSON list is not a node")
        if type(node) is not dict:
            raise Corrupt(f"unexpected JSON value {type(node).__name__}")
        kind = node.get("$")
        if kind == "float":
            bits = bytes.fromhex(node["bits"])
            if len(bits) != 8:
                raise Corrupt("a float is not 8 bytes")
            return struct.unpack(">d", bits)[0]
        if kind == "tuple":
            return tuple(self._list(node["v"]))
        if kind == "frozenset":
            return frozenset(self._list(node["v"]))
        if kind == "bytes":
            return bytes.fromhex(node["hex"])
        if kind == "scalar":
            a = self._array(node)
            if a.ndim != 0:
                raise Corrupt("a scalar is not a 0-d array")
            return a[()]
        if kind == "ref":
            try:
                return self.memo[node["id"]]
            except (KeyError, TypeError):
                raise Corrupt(f"reference to an undefined object {node.get('id')!r}") from None
        if kind == "ndarray":
            return self._define(node, self._array(node))
        if kind == "objarray":
            shape = node["shape"]
            if type(shape) is not list or any(type(d) is not int or d < 0 for d in shape):
                raise Corrupt("bad object array shape")
            out = self._define(node, np.empty(shape, dtype=object))
            values = self._list(node["v"])
            if len(values) != out.size:
                raise Corrupt("an object array's values do not fit its shape")
            flat = out.reshape(-1)
            for i, value in enumerate(values):
                flat[i] = value
            return out
        if kind == "dict":
            t = _DICT_TYPES.get(node["kind"])
            if t is None:
                raise Corrupt(f"unknown dict kind {node['kind']!r}")
            out = t(self._factory(node["factory"])) if t is collections.defaultdict else t()
            self._define(node, out)
            for item in node["items"]:
                if type(item) is not list or len(item) != 2:
                    raise Corrupt("a dict item is not a [key, value] pair")
                out[self.decode(item[0])] = self.decode(item[1])
            return out
        if kind in ("list", "set"):
            out = self._define(node, [] if kind == "list" else set())
            values = self._list(node["v"])
            if kind == "list":
                out.extend(values)
            else:
                out.update(values)
            return out
        if kind == "deque":
            maxlen = node["maxlen"]
            if maxlen is not None and (type(maxlen) is not int or maxlen < 0):
                raise Corrupt("bad deque maxlen")
            out = self._define(node, collections.deque(maxlen=maxlen))
            out.extend(self._list(node["v"]))
            return out
        if kind == "Generator":
            name = node["bit_generator"]
            if name not in _BIT_GENERATORS:
                raise Corrupt(f"unknown bit generator {name!r}")
            bg = getattr(np.random, name)()
            out = self._define(node, np.random.Generator(bg))
            bg.state = self.decode(node["state"])
            return out
        if kind == "RandomState":
            state = None
            out = self._define(node, np.random.RandomState())
            state = self.decode(node["state"])
            name = state.get("bit_generator") if isinstance(state, dict) else None
            if name not in _BIT_GENERATORS:
                raise Corrupt(f"unknown bit generator {name!r}")
            if name != "MT19937":
                out.__init__(getattr(np.random, name)())
            out.set_state(state)
            return out
        if kind == "DataFrame":
            import pandas as pd

            values = self.decode(node["values"])
            index, columns = self.decode(node["index"]), self.decode(node["columns"])
            if not (isinstance(values, np.ndarray) and values.ndim == 2
                    and isinstance(index, list) and isinstance(columns, list)):
                raise Corrupt("a DataFrame's parts do not fit")
            frame = pd.DataFrame(
                values,
                index=pd.Index(index, dtype=object if not index else None, tupleize_cols=False,
                               name=self.decode(node["index_name"])),
                columns=pd.Index(columns, dtype=object if not columns else None,
                                 tupleize_cols=False, name=self.decode(node["columns_name"])),
                copy=False)
            return self._define(node, frame)
        if kind == "object":
            cls = self.classes.get(node["class"])
            if cls is None:
                raise Corrupt(f"unknown class {node['class']!r}")
            return self._state(self._define(node, cls.__new__(cls)), node["state"])
        if kind == "river-class":
            return _river_class(node["module"], node["qualname"])
        if kind in ("river", "river-reduce"):
            cls = _river_class(node["module"], node["qualname"], kind == "river-reduce")
            if kind == "river-reduce":
                return self._define(node, cls(*self._list(node["args"])))
            return self._state(self._define(node, cls.__new__(cls)), node["state"])
        raise Corrupt(f"unknown node kind {kind!r}")

    def _list(self, values):
        if type(values) is not list:
            raise Corrupt("a sequence is not a JSON list")
        return [self.decode(v) for v in values]

    def _factory(self, node):
        if isinstance(node, dict) and node.get("$") == "builtin":
            try:
                return _BUILTIN_FACTORIES[node["name"]]
            except KeyError:
                raise Corrupt(f"unknown defaultdict factory {node['name']!r}") from None
        if isinstance(node, dict) and node.get("$") == "river-class":
            return _river_class(node["module"], node["qualname"])
        return self.decode(node)


def _river_class(module, qualname, vector_dict=False):
    """A river class named in a file: only inside the ``river`` namespace, no private or
    dunder path parts, a subclass of ``river.base.Base`` (or river's VectorDict)."""
    if not (type(module) is str and type(qualname) is str
            and (module == "river" or module.startswith("river."))):
        raise Corrupt(f"class {module!r}.{qualname!r} is not in river's namespace")
    parts = qualname.split(".")
    if any(not p.isidentifier() or p.startswith("__") for p in parts + module.split(".")):
        raise Corrupt(f"bad class name {module}.{qualname}")
    try:
        importlib.import_module("river.base")
        obj = importlib.import_module(module)
        for part in parts:
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise Corrupt(f"river has no class {module}.{qualname} ({exc})") from None
    ok = _is_vector_dict(obj) if vector_dict else _is_river(obj)
    if not (isinstance(obj, type) and ok):
        raise Corrupt(f"{module}.{qualname} is not a river estimator class")
    return obj
