"""The prior and loss records (:mod:`streamsc._models`): each is complete, unknown names
raise naming the choices, each prior's ``solve`` gives the codes of ``streamsc.encode``, and
no module outside the records compares ``prior`` to a name."""

import ast
import dataclasses
import pathlib

import numpy as np
import pytest

import streamsc
from conftest import make_basis, make_X
from streamsc import _models, coding
from streamsc import _validation as v
from streamsc._kernels import amortized as amortized_kernels
from streamsc._kernels import unrolled as unrolled_kernels
from streamsc._kernels import vjp as vjp_kernels

PACKAGE = pathlib.Path(streamsc.__file__).parent


@pytest.mark.parametrize("table, cls", [(_models.PRIORS, _models.Prior),
                                        (_models.LOSSES, _models.Loss)])
def test_every_record_is_complete(table, cls):
    for name, record in table.items():
        assert type(record) is cls and record.name == name
        for field in dataclasses.fields(cls):
            value = getattr(record, field.name)
            assert value is not None, (name, field.name)
            if field.type is bool:
                assert isinstance(value, bool), (name, field.name)
        assert dataclasses.is_dataclass(record)
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.name = "other"


def test_prior_fields_are_the_kernels():
    """The ids are the kernels' own (one id shared by the VJP and unrolled kernels), the
    callables are callable and the shrink modes are the amortised kernels'."""
    ids = {"kl": vjp_kernels.KL, "l1": vjp_kernels.L1, "l2": vjp_kernels.L2}
    unrolled_ids = {"kl": unrolled_kernels.KL, "l1": unrolled_kernels.L1,
                    "l2": unrolled_kernels.L2}
    modes = {amortized_kernels.RELU, amortized_kernels.SOFT, amortized_kernels.KL,
             amortized_kernels.KL_SIGNED}
    assert set(_models.PRIORS) == set(ids)
    for name, prior in _models.PRIORS.items():
        assert prior.kernel_id == ids[name] == unrolled_ids[name]
        for fn in (prior.solve, prior.max_iter, prior.unrolled_step, prior.amortized_start):
            assert callable(fn)
        assert len(prior.amortized_modes) == 2 and set(prior.amortized_modes) <= modes
        assert prior.state_size(7, False) == 7
        assert prior.state_size(7, True) == (14 if prior.split else 7)
    assert len({prior.kernel_id for prior in _models.PRIORS.values()}) == len(ids)


def test_loss_fields():
    assert [loss.code for loss in _models.LOSSES.values()] == [0, 1]
    for loss in _models.LOSSES.values():
        assert loss.priors and set(loss.priors) <= set(_models.PRIORS)
        assert loss.default_solver in v.SOLVERS
    # the schema's choices are the records' names
    assert v.PRIORS == tuple(_models.PRIORS) and v.LOSSES == tuple(_models.LOSSES)


@pytest.mark.parametrize("lookup, kind, choices", [
    (_models.get_prior, "prior", "('kl', 'l1', 'l2')"),
    (_models.get_loss, "loss", "('squared', 'kl')"),
])
@pytest.mark.parametrize("bad", ["l3", "KL", "", None, 1])
def test_unknown_names_raise_naming_the_choices(lookup, kind, choices, bad):
    with pytest.raises(ValueError) as info:
        lookup(bad)
    assert str(info.value) == f"{kind} must be one of {choices}, got {bad!r}"


def test_lookups_return_the_records():
    for name, prior in _models.PRIORS.items():
        assert _models.get_prior(name) is prior
    for name, loss in _models.LOSSES.items():
        assert _models.get_loss(name) is loss


def test_split_and_merge_are_inverse():
    rng = np.random.default_rng(3)
    W = rng.standard_normal((4, 6))
    p = np.full(6, 0.2)
    prior = _models.PRIORS["kl"]
    Wp, Wm = prior.split_halves(W, p)
    assert np.all(Wp > 0) and np.all(Wm > 0)
    np.testing.assert_allclose(Wp * Wm, np.broadcast_to(p * p, W.shape), rtol=1e-12)
    np.testing.assert_allclose(prior.merge(np.hstack([Wp, Wm]), 6), W, rtol=0, atol=1e-14)


CASES = [("squared", prior, signed) for prior in ("kl", "l1", "l2") for signed in (False, True)]
CASES += [("kl", "kl", False), ("kl", "kl", True)]


@pytest.mark.parametrize("loss, prior, signed", CASES)
@pytest.mark.parametrize("n", [1, 5, 70])
def test_each_prior_solves_as_encode(loss, prior, signed, n):
    """A record's ``solve`` gives exactly the codes (and halves) of ``streamsc.encode``:
    one row, a few rows, and a batch past the Gram / EGD-block thresholds."""
    m, k, lam = 10, 16, 0.1
    B = make_basis(m, k, np.random.default_rng(11))
    X = counts = make_X(B, np.random.default_rng(12), n)
    if loss == "kl":  # encode normalises the counts; solve takes the distributions
        counts = np.abs(X) + 0.01
        X = v.as_distribution("X", counts)
    p = np.full(k, 1.0 / k)
    tol = 1e-6 * lam
    solver = v.resolve_solver(None, loss, prior)
    with coding._threads(None, n):  # as in coding.solve: BLAS on one thread
        W, halves, n_iter, viol = _models.get_prior(prior).solve(
            np.ascontiguousarray(X), B, loss=_models.get_loss(loss), lam=lam, p=p,
            signed=signed, tol=tol, solver=solver, max_iter=None, init=None,
        )
    expected = streamsc.encode(counts, B, loss=loss, prior=prior, lam=lam, signed=signed,
                               return_n_iter=True,
                               return_halves=_models.PRIORS[prior].halved(signed))
    np.testing.assert_array_equal(W, expected[0])
    np.testing.assert_array_equal(n_iter, expected[-1])
    assert np.all(viol <= tol)
    if _models.PRIORS[prior].halved(signed):
        np.testing.assert_array_equal(halves[0], expected[1][0])
        np.testing.assert_array_equal(halves[1], expected[1][1])
    else:
        assert halves is None


def _compares_a_name(node, what=("prior", "loss")):
    """``prior`` or ``loss`` (a name or an attribute) compared to a string literal."""
    if not isinstance(node, ast.Compare):
        return False
    sides = [node.left, *node.comparators]
    named = any(isinstance(s, ast.Name) and s.id in what
                or isinstance(s, ast.Attribute) and s.attr in what for s in sides)
    literal = any(isinstance(s, ast.Constant) and isinstance(s.value, str)
                  or isinstance(s, (ast.Tuple, ast.List, ast.Set))
                  and any(isinstance(e, ast.Constant) and isinstance(e.value, str)
                          for e in s.elts)
                  for s in sides)
    return named and literal


def test_no_module_compares_prior_or_loss_to_a_name():
    """Only the records know the priors and losses by name: no module of the package
    compares ``prior`` or ``loss`` to a string (``_params.py``, the schema, validates the choice names), and the
    old tables ``PRIOR_IDS`` / ``LOSS_CODES`` are gone."""
    found = []
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name in ("_models.py", "_params.py"):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if _compares_a_name(node):
                found.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.Name) and node.id in ("PRIOR_IDS", "LOSS_CODES", "_MODES"):
                found.append(f"{path.name}:{node.lineno} {node.id}")
    assert found == []


def test_the_checker_finds_a_comparison():
    assert _compares_a_name(ast.parse('cfg.prior == "kl"').body[0].value)
    assert _compares_a_name(ast.parse('prior in ("l1", "l2")').body[0].value)
    assert _compares_a_name(ast.parse('self.config.loss != "kl"').body[0].value)
    assert not _compares_a_name(ast.parse('solver == "kl"').body[0].value)
