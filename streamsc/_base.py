"""What every streamsc estimator shares: :class:`StreamscEstimator`, a mixin next to river's
base classes or scikit-learn's ``BaseEstimator``.

* ``save(path)``: the model file of :mod:`streamsc.persistence` (JSON plus NumPy arrays, no
  pickle), written by :mod:`streamsc._model_file`.
* ``_transaction(deep=False)``: one all-or-nothing learning step. A context manager that
  records the model's learnable state -- the ``__dict__`` of the estimator and of every
  registered object it holds (a coder, its feature names, its learner, an amortised
  encoder; not a frozen dataclass such as the learner's ``Config``, which is replaced,
  never changed) -- and puts it back on any exception. ``deep=False`` records the attributes by
  reference: enough for one example, whose steps replace the arrays they change (they only
  write in place after the last point where they can fail). ``deep=True`` copies them
  (learners through ``Learner.snapshot``/``restore``; constructor parameters, never
  changed by learning, are kept by reference): for calls that learn several examples.
* the state-export hooks persistence needs: the registry of classes a model file may name,
  by a stable name (an estimator's class name, whatever module defines it), filled in by
  subclassing (``__init_subclass__``) and by :func:`register_state_class` for the objects an
  estimator holds; :data:`ESTIMATORS` says which module defines each estimator, so
  ``streamsc.load`` imports it before decoding (by this fixed table, never by a name read
  from a file).

This module imports only :mod:`streamsc._model_file` (which imports only
:mod:`streamsc._codec`, which imports no streamsc module), and no estimator module imports
:mod:`streamsc.persistence`: no import cycle.
"""

import copy
import inspect
import sys

from . import _model_file

__all__ = ["ESTIMATORS", "StreamscEstimator", "register_state_class"]

#: stable name -> module defining the estimator; streamsc.load imports the module of each
#: name a file uses before decoding it
ESTIMATORS = {
    "SparseCoder": "streamsc.sparse_coder",
    "SparseCodingClassifier": "streamsc.classifier",
    "SparseCodingRegressor": "streamsc.regressor",
    "SparseCodingTransformer": "streamsc.sklearn",
}

_CLASSES = {}  # stable name -> class
_NAMES = {}  # class -> stable name


def register_state_class(cls, name=None):
    """Let model files hold instances of ``cls`` (saved by their ``__dict__``), under the
    stable ``name`` (default: the class's name). Returns ``cls`` (usable as a decorator)."""
    name = cls.__name__ if name is None else name
    known = _CLASSES.get(name)
    if known is not None and known is not cls:
        # a reloaded module defines a new class object of the same name: the newest wins
        _NAMES.pop(known, None)
    _CLASSES[name] = cls
    _NAMES[cls] = name
    return cls


def registered_classes():
    """stable name -> class, a copy."""
    return dict(_CLASSES)


def registered_names():
    """class -> stable name, a copy."""
    return dict(_NAMES)


_PARAMS = {}


def _param_names(cls):
    """The constructor parameters of ``cls`` (kept by reference by a deep transaction)."""
    names = _PARAMS.get(cls)
    if names is None:
        try:
            names = frozenset(inspect.signature(cls.__init__).parameters) - {"self"}
        except (TypeError, ValueError):  # pragma: no cover
            names = frozenset()
        _PARAMS[cls] = names
    return names


def _state_objects(root, deep):
    """The registered objects reachable from ``root`` through attributes (root first).
    Frozen ones (:func:`_frozen`) hold plain values: none is looked into, and the shallow
    search leaves them out (they need no recording); the deep search also stops at
    objects with their own ``snapshot``."""
    registered = _NAMES
    found = [root]
    seen = {id(root)}
    for obj in found:  # breadth first: found grows as the loop goes
        if deep and (_frozen(type(obj)) or hasattr(obj, "snapshot")
                     and not isinstance(obj, StreamscEstimator)):
            continue
        for value in obj.__dict__.values():
            if type(value) in registered and id(value) not in seen \
                    and (deep or not _frozen(type(value))):
                seen.add(id(value))
                found.append(value)
    return found


_FROZEN = {}


def _frozen(cls):
    """Whether instances of ``cls`` cannot change (a frozen dataclass, such as the learner's
    ``Config``: replaced, never mutated): a shallow transaction need not record them, nor
    look into them."""
    frozen = _FROZEN.get(cls)
    if frozen is None:
        params = getattr(cls, "__dataclass_params__", None)
        frozen = _FROZEN[cls] = params is not None and params.frozen
    return frozen


def _snapshot(root, deep):
    objects = _state_objects(root, deep)
    if not deep:
        return [(obj, None, dict(obj.__dict__)) for obj in objects]
    memo = {id(obj): obj for obj in objects}  # other state objects: themselves, not copies
    out = []
    for obj in objects:
        if hasattr(obj, "snapshot") and not isinstance(obj, StreamscEstimator):
            out.append((obj, obj.snapshot(), None))
            continue
        params = _param_names(type(obj)) if isinstance(obj, StreamscEstimator) else ()
        state = {name: value if name in params else copy.deepcopy(value, memo)
                 for name, value in obj.__dict__.items()}
        out.append((obj, None, state))
    return out


def _restore(saved):
    for obj, snap, state in saved:
        if snap is not None:
            obj.restore(snap)
        else:
            obj.__dict__.clear()
            obj.__dict__.update(state)


class StreamscEstimator:
    """The base of every streamsc estimator (a mixin: list it before river's or
    scikit-learn's base classes). Subclasses are registered for model files under their
    class name; ``_state_classes`` names the classes of the objects they hold."""

    #: classes of the objects the estimator holds in its state (registered with it)
    _state_classes = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        register_state_class(cls)
        for klass in cls.__dict__.get("_state_classes", ()):
            register_state_class(klass)

    def save(self, path):
        """Save the model to ``path`` (a model file of JSON and NumPy arrays that runs no code
        when loaded; see :mod:`streamsc.persistence`); :func:`streamsc.load` reads it back.
        Written atomically (a unique temporary in the same directory, fsynced and renamed);
        through a symlink, the link's target is written.

        Raises
        ------
        TypeError
            If the model holds a value a model file cannot (nothing is written).
        """
        save_model(self, path)

    def _store_params(self, arguments):
        """Keep every constructor argument as the attribute of its name, unchanged (the
        estimators' ``__init__`` call it with their ``locals()`` first, as river's and
        scikit-learn's ``get_params`` expect)."""
        for name in _param_names(type(self)):
            setattr(self, name, arguments[name])

    def _transaction(self, deep=False):
        """One all-or-nothing step: on any exception inside, the model's learnable state is
        put back as it was (see the module docstring for ``deep``). A context manager."""
        return _Transaction(_snapshot(self, deep))


class _Transaction:
    """The context manager of :meth:`StreamscEstimator._transaction` (a class: cheaper per
    example than a generator-based one)."""

    __slots__ = ("saved",)

    def __init__(self, saved):
        self.saved = saved

    def __enter__(self):
        return None

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            _restore(self.saved)
        return False


def save_model(obj, path):
    """Write ``obj`` (a streamsc estimator, or a river object holding them) to ``path``."""
    version = sys.modules[__package__].__version__  # the package: always imported first
    t = type(obj)
    top = _NAMES.get(t)
    if top is None:
        top = f"{t.__module__}.{t.__qualname__}"
    _model_file.write(obj, path, registered_names(), version, top)
