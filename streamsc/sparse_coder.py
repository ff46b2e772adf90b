"""SparseCoder: online sparse coding as a river transformer."""

import functools

import numpy as np
import pandas as pd
from river import base

from . import _base
from . import _features, _params
from . import _validation as validation
from ._basis_steps import StepTooLarge
from ._learner import Learner

__all__ = ["SparseCoder"]


@functools.lru_cache(maxsize=16)
def _atom_columns(k):
    """The column index of a batch of codes, built once per k (an Index is immutable, so
    the frames transform_many returns can share it)."""
    return pd.Index([f"atom_{j}" for j in range(k)])


class SparseCoder(_base.StreamscEstimator, base.MiniBatchTransformer):
    r"""Online sparse coding (Bradley & Bagnell, 2008): learns a basis from a stream and
    transforms each example into its sparse code.

    The code of an example :math:`x` under the basis :math:`B` (one atom per column) is

    .. math::

        \hat w = \arg\min_w D(x \,\|\, f(Bw)) + \lambda\, R(w)

    with the prior term :math:`R` of :func:`streamsc.encode` (``"kl"``: the unnormalised KL
    divergence to ``p``, the paper's choice; ``"l1"``; ``"l2"``) and the matched
    loss/transfer pair chosen by ``loss``: ``"squared"``, :math:`D = \tfrac12\|x - Bw\|^2`
    with :math:`f` the identity, or ``"kl"`` for count data (text),
    :math:`D = \mathrm{KL}(\bar x \,\|\, \mathrm{softmax}(Bw))` between the document's
    word distribution :math:`\bar x = x / \sum_i x_i` and the normalised exponential of
    :math:`Bw` (the paper's Appendix D; needs ``prior="kl"``). ``learn_one`` computes
    :math:`\hat w` and takes one step on the basis against the reconstruction loss (see
    **Learning the basis**), keeping every atom at unit L2 norm.

    **Feature names.** The basis has one row per feature name ever learned. A name seen for
    the first time by ``learn_one``/``learn_many`` gets a row initialised from the seed and
    the name alone (a normal vector seeded by ``(seed, crc32(name))``, scaled to the size of
    an entry of a unit-norm atom), after which all atoms are rescaled to unit norm. Rows are
    kept in a canonical order of the names (numbers, then strings, then other keys by
    ``repr``), so the order of the keys in a dict, or the order in which names first
    appeared, changes nothing.

    **Missing and unknown features.** An example is coded, and learned from, on the features
    it has: a missing feature is unobserved, not zero, so its row takes no part in the code
    or the gradient step (its row is only rescaled with its atom). ``transform_one`` and
    ``transform_many`` ignore names that were never learned (there is no row to use); an
    example with no learned feature at all, and every example before the first
    ``learn_one``, is coded to zeros. ``learn_one({})`` does nothing.

    **Documents** (``loss="kl"``). An example is a bag of words, token -> count, such as
    ``river.feature_extraction.BagOfWords`` emits (non-negative weights such as tf-idf work
    too). Unlike the squared loss, a word missing from a document is a *zero count*, not
    unobserved: the softmax spreads probability over the whole vocabulary, so the code and
    the gradient step use every row, and the step moves every row (the work per document is
    O(m k), the memory O(m) beyond the basis). The vocabulary grows as for the squared loss:
    a word first seen by ``learn_one`` gets a row from ``(seed, word)``; ``transform_one``
    ignores words never learned. Counts are normalised to a distribution, so only the
    proportions of the words matter (the paper's normalised counts; the document length
    would only rescale ``lam``). Since every known word's row moves with every document,
    when a word joins the vocabulary matters: ``learn_many`` adds every column of its frame
    first, like ``learn_one`` of rows that keep their zero counts as keys. A negative count raises ``ValueError``. A blank
    document, with no positive count (``{}`` included, as ``BagOfWords`` makes of ``""`` or
    ``"!!!"``), has no distribution to learn from: ``learn_one`` of it does nothing (not
    even add its words), ``learn_many`` skips such rows, and ``transform_one`` of it, or of
    a document whose words were all never learned, returns zeros, as for an example with no
    learned feature (an error would stop a pipeline on a blank text).

    **Bad input.** ``x`` must be a ``dict`` of real numbers (``bool`` counts as 0/1);
    anything else raises ``TypeError``, and NaN or infinity raises ``ValueError``, naming the
    feature, before the model changes. DataFrames given to ``learn_many``/``transform_many``
    must have unique column names and numeric, finite values (NaN is not read as "missing";
    pass such rows to ``learn_one`` without the missing keys).

    **Learning the basis.** The first ``n_components`` distinct examples become the atoms
    (as SPAMS and scikit-learn start from data); features first seen later get seeded rows.
    After that, with the squared loss and ``gradient="alternating"`` (the defaults), each
    example goes into the running statistics of Mairal et al.'s online surrogate
    (JMLR 2010), :math:`A = \sum_t c_t \hat w_t \hat w_t^\top` and
    :math:`S = \sum_t c_t x_t \hat w_t^\top` with weights :math:`c_t` growing linearly in t
    (old examples, coded under an old basis, are forgotten); after every
    ``n_components``-th example, every atom moves to the surrogate's minimiser, one at a
    time, on the unit sphere: no step size, and nothing depends on the scale of the data
    or the codes (a supervised model's labelled step moves, after every example, the
    atoms its code uses, so that its head sees the codes change gradually). With
    ``gradient="implicit"`` the surrogate takes the reconstruction part of the gradient and
    an SGD step the implicit term through the code; so does a supervised model's labelled
    step with its backprop term. ``gradient="unrolled"``, ``basis_update="sgd"`` and the
    KL loss take eq. 7-style SGD steps along the whole gradient, with a per-atom AdaGrad step
    ``learning_rate / sqrt(G_j)``, :math:`G_j` the sum of the squared norms of atom j's
    gradients (``basis_update="sgd"``): also scale-free, decaying as one over the square root
    of the atom's use. Atoms the codes have stopped using, and the less used of two near
    duplicates, are replaced by the residual of a recent poorly reconstructed example. An
    example whose step would overflow raises ``ValueError`` and leaves the model unchanged.

    **Cache.** The last code is kept with its example and the version of the basis: calling
    ``transform_one(x)`` again with the same values and an unchanged basis (as progressive
    validation does) returns it without solving, and after ``learn_one`` moved the basis
    it is the warm start of the next solve of the same example.

    Parameters
    ----------
    n_components
        Number of atoms k.
    loss
        ``"squared"`` (linear transfer) or ``"kl"`` (softmax transfer, for word counts).
    prior
        ``"kl"``, ``"l1"`` or ``"l2"`` (see :func:`streamsc.encode`).
    lam
        Regularisation weight :math:`\lambda > 0`. Default (``None``), calibrated to the
        data: for the squared loss, 0.05 (KL prior) or 0.1 (L1, L2) times the mean L2 norm
        of the first ``n_components`` examples learned (the right lam grows with the scale
        of x; until then the factor alone); for the KL loss, 0.01 (documents are coded as
        distributions, which have no scale). ``streamsc._params.DEFAULT_LAM``.
    p
        KL prior mean: a positive number or one per atom. Default ``0.1/n_components``.
    signed
        Allow negative coefficients (for KL: the expanded basis :math:`[B, -B]`).
    learning_rate
        :math:`\eta_0` of the SGD basis steps (``basis_update="sgd"``): atom j moves by
        :math:`\eta_0` times its gradient over the root of the sum of its squared gradient
        norms (per-atom AdaGrad; dimensionless, the atoms have unit norm). A supervised
        model's labelled step uses it for its backprop term, and ``gradient="implicit"`` for its
        implicit term; the surrogate update itself has no step.
    tol
        Stopping threshold of the code solver on the largest violation of the optimality
        conditions, for an example of L2 norm below 2. Default ``1e-6 * lam``. The violation
        is in the units of x, so a larger example uses ``tol * 2**floor(log2(norm))``: codes
        keep the same relative accuracy, and cost, whatever the scale of the data.
    solver
        KL solver, ``"egd"``, ``"egd_diag"`` or ``"newton"`` (see :func:`streamsc.encode`);
        ``None``: EGD for the squared loss, Newton for the KL loss.
    max_iter
        Iteration cap of the code solver (default: the solver's own).
    seed
        Seed of the rows given to new features. ``None`` draws one from the operating system
        when the model is built (river's convention: unseeded models are not reproducible).
    gradient
        The gradient of each basis step. ``"alternating"`` (default, the paper's eq. 7): the
        reconstruction gradient with the code held fixed. ``"implicit"``: the total
        derivative of the reconstruction loss through the exact code :math:`\hat w(B)`
        (implicit differentiation, :func:`streamsc.encode_vjp`). ``"unrolled"`` (PUDLE,
        Tolooshams & Ba 2022; squared loss only): the derivative of
        :math:`\tfrac12\|x - B w_T(B)\|^2` through ``unrolled_steps`` iterations of ISTA
        (L1, L2) or fixed-step EGD (KL) from a cold start (:func:`streamsc.unrolled_vjp`);
        the exact code is not computed by ``learn_one``. ``demos/gradients.py``
        compares the three on a planted dictionary.
    unrolled_steps
        T, the number of unrolled iterations for ``gradient="unrolled"``.
    mini_batch
        ``False`` (default): ``learn_many`` is exactly ``learn_one`` on every row in order.
        ``True``: ``learn_many`` codes every row of the frame under the current basis, in
        parallel, then takes one basis step for the frame: the surrogate's (the frame's
        statistics, one pass over every atom) or the per-atom AdaGrad step along the average
        eq. 7 gradient (``basis_update="sgd"``). Alternating gradient only.
    n_threads
        Threads for ``transform_many`` and ``learn_many`` (one example per thread, BLAS
        pinned to one thread inside). ``None``: numba's default (every core).
    encoder
        ``"exact"`` (default): codes are the exact MAP estimates. ``"amortized"``: the coder
        also trains an amortised encoder (:class:`streamsc.amortized.AmortizedEncoder`, a
        linear map with a learned per-atom shifted threshold as in Fallah & Rozell 2022,
        fitted online by regression on the exact codes ``learn_one`` computes), and
        ``transform_one``/``transform_many`` return its fast approximate codes.
        ``"warm_start"``: the same encoder, used only as the warm start of the exact solver
        (exact codes; fewer solver iterations for L1 and the dual Newton solver, none for
        EGD; ``benchmarks/amortized.py`` measures both).
    basis_update
        ``"surrogate"`` (Mairal et al.'s online surrogate for the reconstruction part; squared
        loss, ``gradient`` other than ``"unrolled"``), ``"sgd"`` (the whole gradient with
        per-atom AdaGrad steps) or ``"auto"`` (default): the surrogate where it applies, SGD
        elsewhere. With ``mini_batch=True`` the surrogate takes each
        frame's statistics and makes one pass over every atom.
    basis
        A starting basis: a DataFrame indexed by feature name with one column per atom (such
        as another coder's ``basis_``), or a 2-D array whose rows are features ``0, 1, ...``.
        Atoms are rescaled to unit norm. This is how a basis learned with one prior is used
        with another (the paper codes with KL on a basis learned by L1 sparse coding) or
        carried to a new task.

    Attributes
    ----------
    basis_ : pandas.DataFrame
        The basis, one row per feature name (canonical order) and one column per atom
        (``atom_0``, ...). A copy.

    Examples
    --------
    A stream over four features made of two patterns, one per example, with random weights:

    >>> import numpy as np
    >>> from streamsc import SparseCoder
    >>> rng = np.random.default_rng(0)
    >>> patterns = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]) / np.sqrt(2)
    >>> stream = [dict(zip("abcd", rng.uniform(0.5, 1.5) * patterns[rng.integers(2)]))
    ...           for _ in range(1000)]

    >>> coder = SparseCoder(n_components=2, seed=0)   # the defaults: KL codes
    >>> for x in stream:
    ...     coder.learn_one(x)

    Each atom has found one pattern (KL codes are never exactly zero, so each atom leans a
    little away from the other pattern to cancel its small coefficient):

    >>> coder.basis_.round(2)
       atom_0  atom_1
    a   -0.02    0.71
    b   -0.02    0.71
    c    0.71   -0.02
    d    0.71   -0.02
    >>> code = coder.transform_one({"a": 0.5, "b": 0.5, "c": 0.1, "d": 0.1})
    >>> {name: round(value, 2) for name, value in code.items()}
    {'atom_0': 0.12, 'atom_1': 0.61}

    It slots into river pipelines like any transformer:

    >>> from river import preprocessing
    >>> model = preprocessing.MinMaxScaler() | SparseCoder(n_components=3, seed=0)
    >>> for x in stream[:100]:
    ...     model.learn_one(x)
    >>> sorted(model.transform_one(stream[0]))
    ['atom_0', 'atom_1', 'atom_2']

    Text: word counts from ``BagOfWords``, coded with the KL loss and softmax transfer. Two
    themes, pets and weather:

    >>> from river import feature_extraction
    >>> docs = ["the cat chased the dog", "a dog and a cat play", "my cat likes my dog",
    ...         "rain and wind today", "cold wind then rain", "the rain and the cold wind"]
    >>> text = feature_extraction.BagOfWords() | SparseCoder(n_components=2, loss="kl", seed=0)
    >>> for _ in range(20):
    ...     for doc in docs:
    ...         text.learn_one(doc)
    >>> pets = text.transform_one("a cat and a dog")
    >>> weather = text.transform_one("wind and rain")
    >>> max(pets, key=pets.get), max(weather, key=weather.get)   # one atom per theme
    ('atom_1', 'atom_0')
    >>> basis = text["SparseCoder"].basis_    # one row per word, in logit space
    >>> [basis[atom].nlargest(3).index.tolist() for atom in basis]
    [['wind', 'rain', 'cold'], ['my', 'likes', 'cat']]
    """

    #: the classes of the objects a coder holds, for model files (``streamsc._base``)
    _state_classes = (_features.Features, Learner, _params.Config)

    #: one checker per constructor argument, from the schema shared by every estimator
    #: (``streamsc._params.SCHEMA``; ``basis`` is checked against n_components in __init__)
    _parameter_constraints = _params.checkers(
        _params.LEARNER_PARAMS + ("mini_batch", "n_threads", "basis"))

    def __init__(
        self,
        n_components: int = 32,
        prior: str = "kl",
        loss: str = "squared",
        lam: float | None = None,
        p: float | None = None,
        signed: bool = False,
        learning_rate: float = 1.0,
        tol: float | None = None,
        solver: str | None = None,
        max_iter: int | None = None,
        seed: int | None = None,
        gradient: str = "alternating",
        unrolled_steps: int = _params.DEFAULT_UNROLLED_STEPS,
        encoder: str = "exact",
        mini_batch: bool = False,
        n_threads: int | None = None,
        basis=None,
        basis_update: str = "auto",
    ):
        self._store_params(locals())
        config = _params.check_params(  # the one schema: streamsc._params
            {name: getattr(self, name) for name in _params.LEARNER_PARAMS + ("n_threads",)}
        )
        if _params.validate({"mini_batch": mini_batch})["mini_batch"] \
                and config.gradient != "alternating":
            raise ValueError(
                f"mini_batch=True takes the average eq. 7 step (gradient='alternating'), got "
                f"gradient={config.gradient!r}"
            )
        self._features = _features.Features()
        self._learner = Learner(config)
        self._atoms = tuple(_atom_columns(config.n_components))
        if basis is not None:
            names, rows = _features.check_basis(basis, config.n_components)
            self._features.add(self._features.new_names(names))
            order = [self._features.index[name] for name in names]
            self._learner.start_from(np.asarray(order), rows)

    @classmethod
    def _unit_test_params(cls):
        yield {"n_components": 4}  # seed=None: river also checks seeding is idempotent
        # river's checks stream raw TrumpApproval (values up to 7e5): a tiny step keeps the
        # basis away from the degenerate atoms a huge first step makes, on which coordinate
        # descent crawls (more active atoms than observed rows) and EGD can run away
        yield {"n_components": 2, "prior": "l1", "lam": 0.05, "learning_rate": 1e-12, "seed": 0}
        yield {"n_components": 3, "prior": "kl", "signed": True, "solver": "egd",
               "learning_rate": 1e-12, "seed": 0}
        yield {"n_components": 3, "prior": "l1", "lam": 0.05, "gradient": "unrolled",
               "learning_rate": 1e-12, "seed": 0}
        yield {"n_components": 3, "gradient": "implicit", "encoder": "amortized",
               "learning_rate": 1e-12, "seed": 0}

    # ----------------------------------------------------------------------------------
    # helpers

    def _grow(self, keys):
        """Add rows for the names in ``keys`` not yet known (growing replaces the basis and
        the name index, never mutates them: a ``_transaction`` undoes it by reference)."""
        new = self._features.new_names(keys)
        if new:
            old_pos, new_pos = self._features.add(new)
            self._learner.grow(old_pos, new_pos, new)

    def _check_x(self, x, learning=False):
        """(keys, values) of one example: :func:`_features.check_features`, plus, for the KL
        loss, non-negative counts (and, when ``learning``, at least one positive count: the
        supervised steps need a document; ``learn_one`` passes ``learning=False`` and skips a
        blank one)."""
        keys, values = _features.check_features(x)
        if self._learner.config.distribution:
            _features.check_counts(keys, values, learning=learning)
        return keys, values

    def _gather(self, keys, values):
        """(rows, x) for the learner: the observed rows and their values (squared loss), or
        ``(None, counts over every row)`` (KL loss: a missing word is a zero count). The
        squared loss's keys are remembered for :meth:`_recall`."""
        if self._learner.config.distribution:
            return None, self._features.dense(keys, values)
        gathered = self._features.gather(keys, values)
        if keys:
            self._features.remember(keys)
        return gathered

    def _recall(self, x):
        """``_gather(*_check_x(x))`` by the shortcut of :meth:`Features.recall` (squared
        loss, the known keys of the last example gathered, again; then there is no key to
        add), or None: x must be checked and gathered in full."""
        if self._learner.config.distribution:
            return None
        return self._features.recall(x)

    def _example(self, x):
        """``(rows, x)`` of an example to code, not to learn (no new feature is added): the
        recall shortcut, or the full checks and gather."""
        example = self._recall(x)
        return example if example is not None else self._gather(*self._check_x(x))

    _check_counts_frame = staticmethod(_features.check_frame_counts)

    def _dense_frame(self, columns, values):
        """KL loss: the rows of a frame as counts over every known feature (unknown columns
        dropped, missing ones zero)."""
        index = self._features.index
        keep = [j for j, name in enumerate(columns) if name in index]
        X = np.zeros((values.shape[0], len(index)))
        X[:, [index[columns[j]] for j in keep]] = values[:, keep]
        return X

    def _as_dict(self, code):
        return dict(zip(self._atoms, code.tolist()))

    _check_frame = staticmethod(_features.check_frame)

    def _select(self, columns, values):
        """(rows, values) restricted to learned columns, in row order."""
        index = self._features.index
        keep = [j for j, name in enumerate(columns) if name in index]
        rows = np.array([index[columns[j]] for j in keep], dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        cols = np.array(keep, dtype=np.int64)[order]
        in_order = cols.size == values.shape[1] and np.all(cols == np.arange(cols.size))
        Xv = np.ascontiguousarray(values if in_order else values[:, cols])  # no gather copy
        if rows.size == len(index):
            return None, Xv
        return np.ascontiguousarray(rows[order]), Xv

    # ----------------------------------------------------------------------------------
    # river API

    def learn_one(self, x):
        """Code ``x`` and take one step on the basis, the online surrogate's or SGD's (see
        **Learning the basis** above); new feature names grow it.

        Parameters
        ----------
        x : dict
            Feature name -> real number.
        """
        example = self._recall(x)  # (rows, x) of known keys, or None: check x in full
        if example is None:
            keys, values = self._check_x(x)
            if not keys:
                return
            if self._learner.config.distribution and not (values > 0).any():
                return  # a blank document: no distribution to learn from
        # one learning call at a time, across threads; all or nothing (the step replaces
        # what it changes, so the state is recorded by reference)
        with validation.model_lock(self), self._transaction():
            if example is None:
                self._grow(keys)
                example = self._gather(keys, values)
            try:
                self._learner.learn(*example)
            except StepTooLarge as exc:
                raise _features.too_large(exc, *self._check_x(x)) from None

    def transform_one(self, x):
        """The code of ``x``: ``{"atom_0": w_0, ...}``. Names never learned are ignored.

        Parameters
        ----------
        x : dict
            Feature name -> real number.

        Returns
        -------
        dict
            Atom name -> coefficient.
        """
        return self._as_dict(self._learner.code(*self._example(x)))

    def learn_many(self, X):
        """Exactly ``learn_one`` on every row of ``X`` in order (same codes, same steps); with
        ``mini_batch=True``, one averaged step for the whole frame (codes in parallel).

        Parameters
        ----------
        X : pandas.DataFrame
            One example per row, one feature per column; every value finite.
        """
        columns, values = self._check_frame(X)
        kl = self._learner.config.distribution
        if kl:
            self._check_counts_frame(X, columns, values)
            blank = ~(values > 0).any(axis=1)
            if blank.any():  # blank documents: nothing to learn, as in learn_one
                values = values[~blank]
        if not columns or values.shape[0] == 0:
            return
        # one learning call at a time, across threads; all or nothing (several steps: the
        # state is copied)
        with validation.model_lock(self), self._transaction(deep=True):
            learner = self._learner
            self._grow(columns)
            if kl:
                rows, Xv = None, self._dense_frame(columns, values)
            else:
                rows, Xv = self._select(columns, values)
            i = None
            try:
                if self.mini_batch:
                    learner.learn_batch(rows, Xv)
                else:
                    for i in range(Xv.shape[0]):
                        learner.learn(rows, Xv[i])
            except StepTooLarge as exc:
                # a row-by-row step names its row; the frame's one step, the row holding
                # its largest value
                worst = i if i is not None else int(np.argmax(np.abs(values).max(axis=1)))
                where = ("this frame" if i is None else
                         f"row {int(np.flatnonzero(~blank)[i]) if kl else i} of this frame")
                err = _features.too_large(exc, columns, values[worst])
                raise ValueError(f"{where}: {err}") from None

    def transform_many(self, X):
        """Codes of the rows of ``X`` (solved in parallel, one example per thread).

        Parameters
        ----------
        X : pandas.DataFrame
            One example per row; columns never learned are ignored.

        Returns
        -------
        pandas.DataFrame
            One row per row of ``X`` (same index), one column per atom.
        """
        columns, values = self._check_frame(X)
        if self._learner.config.distribution:
            self._check_counts_frame(X, columns, values)
            rows, Xv = None, self._dense_frame(columns, values)
        else:
            rows, Xv = self._select(columns, values)
        W = self._learner.code_batch(rows, Xv)
        return pd.DataFrame(W, index=X.index, columns=_atom_columns(len(self._atoms)),
                            copy=False)  # W is ours: no copy

    @property
    def basis_(self):
        """The basis as a DataFrame: one row per feature name, one column per atom."""
        names = self._features.names
        return pd.DataFrame(
            self._learner.B.copy(),
            index=pd.Index(names, dtype=object if not names else None, tupleize_cols=False),
            columns=list(self._atoms),
        )
