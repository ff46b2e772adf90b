"""Scale-out on Dask: :class:`streamsc.sklearn.SparseCodingTransformer` under dask-ml.

On a ``distributed.LocalCluster`` with 2 worker processes (1 thread each):

* ``dask_ml.wrappers.ParallelPostFit`` transforms a Dask array and a Dask dataframe block by
  block on the workers; the computed codes equal the in-memory ``transform`` of the whole
  array to rounding (every row is coded independently, to a tolerance that depends only on
  that row; but rows with the same tolerance are solved together, from the batch's Gram
  matrix and the BLAS product ``X B`` when there are at least 64 of them and row by row
  otherwise, and these round differently: ``SAME_ROUNDING`` below);
* ``dask_ml.wrappers.Incremental(shuffle_blocks=False)`` streams ``partial_fit`` over the
  blocks, in order, on the workers; the fitted basis equals the basis from ``partial_fit``
  over the same blocks in the same order in this process, exactly.

dask-ml 2025.1.0 notes (read from ``dask_ml/wrappers.py``): ``Incremental`` checks that the
estimator can be scored (the transformer's ``score`` is its negative mean reconstruction
loss); ``ParallelPostFit.transform`` keeps the input's column chunks in the lazy result's
metadata, so the codes' shape is right only once computed.
"""

import numpy as np
import pandas as pd
import pytest

da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
wrappers = pytest.importorskip("dask_ml.wrappers")

from streamsc.sklearn import SparseCodingTransformer  # noqa: E402

N, M, K, BLOCK = 400, 8, 6, 100
#: codes from differently composed batches agree to this, relative to the largest code
#: (measured: 1e-15; both solve the same problem to the same tol, only rounding differs)
SAME_ROUNDING = 1e-12


def assert_same_codes(actual, desired):
    np.testing.assert_allclose(actual, desired, rtol=0,
                               atol=SAME_ROUNDING * np.abs(desired).max())


def _coder():
    return SparseCodingTransformer(n_components=K, prior="l1", signed=True, lam=0.05,
                                   learning_rate=0.5, shuffle=False, random_state=0)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            yield client


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    atoms = rng.standard_normal((K, M))
    W = np.where(rng.random((N, K)) < 0.3, rng.uniform(0.5, 1.5, (N, K)), 0.0)
    return W @ atoms + 0.05 * rng.standard_normal((N, M))


def test_two_worker_processes(client):
    workers = client.scheduler_info()["workers"]
    assert len(workers) == 2
    assert all(w["nthreads"] == 1 for w in workers.values())
    pids = set(client.run(lambda: __import__("os").getpid()).values())
    assert len(pids) == 2


def test_parallel_post_fit_dask_array(client, data):
    model = wrappers.ParallelPostFit(_coder()).fit(data)
    dX = da.from_array(data, chunks=(BLOCK, -1))
    lazy = model.transform(dX)
    assert isinstance(lazy, da.Array)
    codes = lazy.compute()
    expected = model.estimator.transform(data)  # the in-memory transform of the whole array
    assert codes.shape == (N, K)
    assert_same_codes(codes, expected)
    # and each block alone, in this process, gives exactly the rows the workers computed
    blocks = np.concatenate([model.estimator.transform(data[i:i + BLOCK])
                             for i in range(0, N, BLOCK)])
    np.testing.assert_array_equal(codes, blocks)


def test_parallel_post_fit_dask_dataframe(client, data):
    frame = pd.DataFrame(data, columns=[f"f{j}" for j in range(M)])
    model = wrappers.ParallelPostFit(_coder()).fit(frame)
    lazy = model.transform(dd.from_pandas(frame, npartitions=4))
    codes = np.asarray(lazy.compute())
    assert codes.shape == (N, K)
    assert_same_codes(codes, model.estimator.transform(frame))


def test_incremental_streams_partial_fit_over_blocks(client, data):
    dX = da.from_array(data, chunks=(BLOCK, -1))
    inc = wrappers.Incremental(_coder(), shuffle_blocks=False)
    inc.fit(dX)
    fitted = inc.estimator_
    reference = _coder()
    for i in range(0, N, BLOCK):
        reference.partial_fit(data[i:i + BLOCK])
    assert fitted.n_steps_ == reference.n_steps_ == N
    np.testing.assert_array_equal(fitted.components_, reference.components_)
    # the basis moved away from its initialisation: the stream did something
    start = _coder().partial_fit(data[:1])
    assert np.abs(fitted.components_ - start.components_).max() > 1e-2
    # the fitted model transforms a Dask array on the workers too
    assert_same_codes(inc.transform(dX).compute(), reference.transform(data))
