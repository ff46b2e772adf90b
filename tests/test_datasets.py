"""Tests of ``streamsc.datasets`` against the real data in ``../shared/data``.

Counts, checksums and statistics are those of the data README. Tests that need the data are
skipped (with a reason) when the folder is absent; the error-path tests build their own
directories in ``tmp_path``.
"""

import collections
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import ndimage

from streamsc import datasets

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"benchmark data not found at {DATA} (see issue 7)"
)

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
# md5 of the decompressed idx files (data README): images are checked via the loader output
MNIST_MD5 = {
    ("train", "images"): "6bbc9ace898e44ae57da46a324031adb",
    ("train", "labels"): "a25bea736e30d166cdddb491f175f624",
    ("test", "images"): "2646ac647ad5339dbf082846283269ea",
    ("test", "labels"): "27ae3e4e09519cfbb04c329615203637",
}
LETTER_COUNTS = [4034, 1284, 2114, 1442, 4955, 921, 2472, 861, 4913, 189, 909, 3140, 1602,
                 5024, 3897, 1377, 341, 2673, 1394, 2136, 2562, 664, 520, 413, 1221, 1094]
LETTERS_PER_FOLD = [4617, 5375, 5110, 5353, 5270, 5001, 5583, 5370, 5331, 5142]
WORDS_PER_FOLD = [626, 704, 684, 698, 693, 651, 739, 717, 690, 675]
MOVIE_REVIEWS = [1027, 1307, 902, 1770]
MOVIE_MEAN_RATING = [0.522, 0.634, 0.571, 0.582]


# --------------------------------------------------------------------------------------------
# fixtures: each data set loaded once per module
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_train():
    return datasets.load_mnist(DATA, "train")


@pytest.fixture(scope="module")
def mnist_test():
    return datasets.load_mnist(DATA, "test")


@pytest.fixture(scope="module")
def letters():
    return datasets.load_ocr_letters(DATA)


@pytest.fixture(scope="module")
def letters_mnist():
    return datasets.load_ocr_letters(DATA, size=28, framing="mnist")


@pytest.fixture(scope="module")
def letters_frame():
    return datasets.load_ocr_letters(DATA, size=28, framing="frame")


@pytest.fixture(scope="module")
def movie():
    return datasets.load_movie_scale(DATA)


@pytest.fixture
def letters_dir(tmp_path):
    """A data directory holding only a copy of letters.npz."""
    if not DATA.is_dir():
        pytest.skip(f"benchmark data not found at {DATA}")
    (tmp_path / "ocr_letters").mkdir()
    shutil.copyfile(DATA / "ocr_letters" / "letters.npz", tmp_path / "ocr_letters" / "letters.npz")
    return tmp_path


def _md5(b):
    return hashlib.md5(b).hexdigest()


# --------------------------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------------------------


@needs_data
def test_mnist_shapes_counts_and_first_labels(mnist_train, mnist_test):
    X, y = mnist_train
    assert X.shape == (60000, 784) and X.dtype == np.uint8 and X.flags.writeable
    assert y.shape == (60000,) and y.dtype == np.int64
    assert np.bincount(y).tolist() == MNIST_TRAIN_COUNTS
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    Xt, yt = mnist_test
    assert Xt.shape == (10000, 784) and yt.shape == (10000,)
    assert np.bincount(yt).tolist() == MNIST_TEST_COUNTS
    assert yt[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    # pixel statistics of the training set, scaled to [0, 1] (README: 0.1307 / 0.3081)
    s = X.sum(dtype=np.float64) / 255.0
    s2 = np.einsum("ij,ij->", X, X, dtype=np.float64) / 255.0**2
    mean = s / X.size
    assert mean == pytest.approx(0.1307, abs=5e-5)
    assert np.sqrt(s2 / X.size - mean**2) == pytest.approx(0.3081, abs=5e-5)


@needs_data
@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_output_reproduces_decompressed_md5(split, mnist_train, mnist_test):
    """The loader's arrays, written back in idx format, are byte for byte the canonical files."""
    X, y = mnist_train if split == "train" else mnist_test
    n = X.shape[0]
    head_img = b"".join(int(k).to_bytes(4, "big") for k in (2051, n, 28, 28))
    head_lab = b"".join(int(k).to_bytes(4, "big") for k in (2049, n))
    assert _md5(head_img + X.tobytes()) == MNIST_MD5[split, "images"]
    assert _md5(head_lab + y.astype(np.uint8).tobytes()) == MNIST_MD5[split, "labels"]


@needs_data
def test_mnist_as_float_is_scaled_copy(mnist_test):
    X, y = mnist_test
    Xf, yf = datasets.load_mnist(DATA, "test", as_float=True)
    assert Xf.dtype == np.float64 and Xf.shape == X.shape
    np.testing.assert_array_equal(Xf * 255.0, X.astype(np.float64))
    assert Xf.min() == 0.0 and Xf.max() == 1.0
    np.testing.assert_array_equal(yf, y)


@needs_data
def test_mnist_train_validation_split(mnist_train):
    X, y = mnist_train
    X_tr, y_tr, X_va, y_va = datasets.mnist_train_validation(DATA)
    assert X_tr.shape == (50000, 784) and X_va.shape == (10000, 784)
    np.testing.assert_array_equal(np.concatenate([X_tr, X_va]), X)
    np.testing.assert_array_equal(y_va, y[50000:])
    np.testing.assert_array_equal(y_tr, y[:50000])


def test_mnist_bad_arguments_checked_before_reading(tmp_path):
    # tmp_path holds no data: argument errors must come first
    with pytest.raises(ValueError, match="split"):
        datasets.load_mnist(tmp_path, "validation")
    with pytest.raises(TypeError, match="as_float"):
        datasets.load_mnist(tmp_path, as_float=1)
    with pytest.raises(ValueError, match="n_validation"):
        datasets.mnist_train_validation(tmp_path, n_validation=60000)
    with pytest.raises(ValueError, match="n_validation"):
        datasets.mnist_train_validation(tmp_path, n_validation=0)


# --------------------------------------------------------------------------------------------
# OCR letters
# --------------------------------------------------------------------------------------------


@needs_data
def test_letters_counts(letters):
    X, y, fold, word = letters
    n = 52152
    assert X.shape == (n, 128) and X.dtype == np.float64
    assert set(np.unique(X)) == {0.0, 1.0}
    assert X.mean() == pytest.approx(0.2197, abs=5e-5)
    for a in (y, fold, word):
        assert a.shape == (n,) and a.dtype == np.int64
    assert np.bincount(y, minlength=26).tolist() == LETTER_COUNTS
    assert np.bincount(fold, minlength=10).tolist() == LETTERS_PER_FOLD
    # words: contiguous, numbered 0..6876 in order, one fold each
    assert word[0] == 0 and np.all(np.diff(word) >= 0) and np.all(np.diff(word) <= 1)
    assert word[-1] + 1 == 6877
    starts = np.flatnonzero(np.r_[True, np.diff(word) > 0])
    assert np.all(fold == np.repeat(fold[starts], np.diff(np.r_[starts, n])))
    assert np.bincount(fold[starts], minlength=10).tolist() == WORDS_PER_FOLD
    first = "".join(chr(ord("a") + c) for c in y[word == 0])
    assert first == "ommanding"


def _ink_box(img):
    r = np.flatnonzero(img.any(axis=1))
    c = np.flatnonzero(img.any(axis=0))
    return r[0], r[-1] + 1, c[0], c[-1] + 1


def _mnist_reference(img16):
    """One letter by the MNIST recipe, step by step with scipy.ndimage (no vectorisation)."""
    r0, r1, c0, c1 = _ink_box(img16 > 0)
    crop = img16[r0:r1, c0:c1].astype(np.float64)
    h, w = crop.shape
    s = 20.0 / max(h, w)
    H, W = max(1, int(np.floor(h * s + 0.5))), max(1, int(np.floor(w * s + 0.5)))
    z = ndimage.zoom(crop, (H / h, W / w), order=1)
    com = ndimage.center_of_mass(z)
    top = int(np.clip(np.rint(14 - com[0]), 0, 28 - H))
    left = int(np.clip(np.rint(14 - com[1]), 0, 28 - W))
    out = np.zeros((28, 28))
    out[:H, :W] = z
    return ndimage.shift(out, (top, left), order=1)  # whole-pixel shift: exact


@needs_data
def test_letters_mnist_framing(letters, letters_mnist):
    X16, y, fold, word = letters
    X, y28, fold28, word28 = letters_mnist
    assert X.shape == (52152, 784) and X.dtype == np.float64
    np.testing.assert_array_equal(y28, y)
    np.testing.assert_array_equal(fold28, fold)
    np.testing.assert_array_equal(word28, word)
    assert X.min() >= 0.0 and X.max() <= 1.0
    imgs = X.reshape(-1, 28, 28)
    # every letter's ink box has its longer side at exactly 20 pixels, inside the field
    rows, cols = (imgs > 0).any(axis=2), (imgs > 0).any(axis=1)
    h = 28 - rows[:, ::-1].argmax(axis=1) - rows.argmax(axis=1)
    w = 28 - cols[:, ::-1].argmax(axis=1) - cols.argmax(axis=1)
    assert np.all(np.maximum(h, w) == 20) and h.min() >= 1 and w.min() >= 1
    # centre of mass at (14, 14) to within half a pixel (whole-pixel placement, as MNIST),
    # except for the few letters whose box had to be pulled back inside the field
    mass = imgs.sum(axis=(1, 2))
    com_r = imgs.sum(axis=2) @ np.arange(28) / mass
    com_c = imgs.sum(axis=1) @ np.arange(28) / mass
    off = np.maximum(np.abs(com_r - 14), np.abs(com_c - 14))
    assert np.mean(off <= 0.5 + 1e-9) > 0.99
    assert abs(com_r.mean() - 14) < 0.05 and abs(com_c.mean() - 14) < 0.05
    # identical to a letter-by-letter scipy.ndimage reference on a sample
    sample = np.random.default_rng(0).choice(X.shape[0], size=150, replace=False)
    for i in sample:
        ref = _mnist_reference(X16[i].reshape(16, 8))
        np.testing.assert_allclose(imgs[i], ref, rtol=0, atol=1e-12)


@needs_data
def test_letters_frame_framing(letters, letters_frame):
    X16 = letters[0].reshape(-1, 16, 8)
    X = letters_frame[0]
    assert X.shape == (52152, 784) and X.min() >= 0.0 and X.max() <= 1.0
    imgs = X.reshape(-1, 28, 28)
    # all ink in the 20x10 scaled frame, centred: rows 4-23, columns 9-18
    np.testing.assert_allclose(imgs[:, 4:24, 9:19].sum(axis=(1, 2)), imgs.sum(axis=(1, 2)))
    sample = np.random.default_rng(1).choice(X.shape[0], size=50, replace=False)
    for i in sample:
        np.testing.assert_allclose(
            imgs[i, 4:24, 9:19], ndimage.zoom(X16[i], 1.25, order=1), rtol=0, atol=1e-12
        )


@needs_data
def test_ocr_letters_split_protocol(letters):
    _, _, fold, word = letters
    train, val, test = datasets.ocr_letters_split(fold)
    assert test.size == 5331 + 5142 and val.size == 5370
    assert train.size == sum(LETTERS_PER_FOLD[:7])
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val, test])), np.arange(52152))
    assert set(np.unique(fold[train])) == set(range(7))
    # folds are per word: the three sets share no word
    wt, wv, ws = (set(word[i].tolist()) for i in (train, val, test))
    assert not (wt & wv) and not (wt & ws) and not (wv & ws)


def test_ocr_letters_split_arguments():
    fold = np.array([0, 1, 2, 3])
    tr, va, te = datasets.ocr_letters_split(fold, test_folds=(3,), validation_folds=(0, 1))
    assert tr.tolist() == [2] and va.tolist() == [0, 1] and te.tolist() == [3]
    with pytest.raises(ValueError, match="overlap"):
        datasets.ocr_letters_split(fold, test_folds=(1, 2), validation_folds=(2,))
    with pytest.raises(ValueError, match="fold"):
        datasets.ocr_letters_split(np.zeros((2, 2), dtype=int))
    with pytest.raises(ValueError, match="fold"):
        datasets.ocr_letters_split(np.array([0.5, 1.0]))


def test_letters_bad_arguments_checked_before_reading(tmp_path):
    with pytest.raises(ValueError, match="size"):
        datasets.load_ocr_letters(tmp_path, size=32)
    with pytest.raises(TypeError, match="size"):
        datasets.load_ocr_letters(tmp_path, size=28.0)
    with pytest.raises(ValueError, match="framing"):
        datasets.load_ocr_letters(tmp_path, size=28, framing="centre")


# --------------------------------------------------------------------------------------------
# movie scale data
# --------------------------------------------------------------------------------------------


@needs_data
def test_movie_counts_ratings_and_authors(movie):
    counts, vocab, ratings, authors = movie
    assert sp.issparse(counts) and counts.format == "csr" and counts.dtype == np.int64
    assert counts.shape == (5006, 5000)
    assert len(vocab) == 5000 == len(set(vocab))
    assert ratings.shape == (5006,) and ratings.dtype == np.float64
    assert ratings.min() >= 0.0 and ratings.max() <= 1.0
    assert ratings.mean() == pytest.approx(0.581, abs=1e-3)
    assert ratings.std() == pytest.approx(0.182, abs=1e-3)
    # authors in sorted order, each with its README count and mean rating
    assert list(datasets.MOVIE_AUTHORS) == sorted(datasets.MOVIE_AUTHORS)
    change = np.flatnonzero(authors[1:] != authors[:-1]) + 1
    assert authors[np.r_[0, change]].tolist() == list(datasets.MOVIE_AUTHORS)
    for author, n, mean in zip(datasets.MOVIE_AUTHORS, MOVIE_REVIEWS, MOVIE_MEAN_RATING):
        mask = authors == author
        assert mask.sum() == n
        assert ratings[mask].mean() == pytest.approx(mean, abs=1e-3)
    assert counts.sum(axis=1).min() > 0
    # first and last rows are the raw counts of the first and last reviews (file order)
    col = {w: j for j, w in enumerate(vocab)}
    for row, author, line_no in ((0, datasets.MOVIE_AUTHORS[0], 0),
                                 (5005, datasets.MOVIE_AUTHORS[-1], -1)):
        lines = (DATA / "movie_scale" / "scaledata" / author / f"subj.{author}").read_text(
            encoding="ascii"
        ).splitlines()
        want = collections.Counter(t for t in lines[line_no].split(" ") if t in col)
        got = counts[row]
        assert {vocab[j]: int(c) for j, c in zip(got.indices, got.data)} == dict(want)


@needs_data
def test_movie_vocabulary_is_top_summed_tfidf(movie):
    """The vocabulary is the 5,000 best words by summed (l2-normalised) tf-idf of sklearn's
    TfidfVectorizer on the whitespace-split reviews, best first."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    _, vocab, _, _ = movie
    docs = []
    for author in datasets.MOVIE_AUTHORS:
        path = DATA / "movie_scale" / "scaledata" / author / f"subj.{author}"
        docs += path.read_text(encoding="ascii").splitlines()
    tfidf = TfidfVectorizer(analyzer=str.split)
    score = np.asarray(tfidf.fit_transform(docs).sum(axis=0)).ravel()
    words = tfidf.get_feature_names_out()
    assert words.size == datasets.movie_scale._MOVIE_N_TOKENS
    order = np.lexsort((words, -score))  # by score, ties alphabetical
    assert vocab == words[order[:5000]].tolist()
    assert vocab[:3] == ["the", ",", "."]


def test_movie_bad_arguments_checked_before_reading(tmp_path):
    with pytest.raises(ValueError, match="n_words"):
        datasets.load_movie_scale(tmp_path, n_words=0)
    with pytest.raises(ValueError, match="n_words"):
        datasets.load_movie_scale(tmp_path, n_words=10**6)
    with pytest.raises(TypeError, match="n_words"):
        datasets.load_movie_scale(tmp_path, n_words=50.0)


# --------------------------------------------------------------------------------------------
# data directory, missing files, checksums
# --------------------------------------------------------------------------------------------


def test_no_data_dir_is_a_clear_error(monkeypatch):
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    with pytest.raises(FileNotFoundError, match="--data-dir.*STREAMSC_DATA"):
        datasets.resolve_data_dir(None)
    monkeypatch.setenv(datasets.ENV_VAR, "")  # empty counts as unset
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        datasets.load_ocr_letters()


def test_nonexistent_or_bad_data_dir(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        datasets.resolve_data_dir(missing)
    monkeypatch.setenv(datasets.ENV_VAR, str(missing))
    with pytest.raises(FileNotFoundError, match="STREAMSC_DATA"):
        datasets.resolve_data_dir()
    with pytest.raises(TypeError, match="data_dir"):
        datasets.resolve_data_dir(3)


def test_missing_file_names_file_and_directory(tmp_path):
    for load, name in (
        (datasets.load_mnist, "train-images-idx3-ubyte.gz"),
        (datasets.load_ocr_letters, "letters.npz"),
        (datasets.load_movie_scale, "subj.Dennis+Schwartz"),
    ):
        with pytest.raises(FileNotFoundError) as info:
            load(tmp_path)
        assert name in str(info.value) and str(tmp_path) in str(info.value)


@needs_data
def test_missing_second_mnist_file(tmp_path):
    (tmp_path / "mnist").mkdir()
    shutil.copyfile(DATA / "mnist" / "t10k-images-idx3-ubyte.gz",
                    tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte.gz"):
        datasets.load_mnist(tmp_path, "test")


def test_env_var_is_honoured_and_argument_wins(letters_dir, monkeypatch):
    monkeypatch.setenv(datasets.ENV_VAR, str(letters_dir))
    assert datasets.resolve_data_dir() == letters_dir
    X, y, fold, word = datasets.load_ocr_letters()
    assert X.shape == (52152, 128)
    # an explicit argument takes precedence over the variable
    other = letters_dir / "elsewhere"
    other.mkdir()
    assert datasets.resolve_data_dir(other) == other
    with pytest.raises(FileNotFoundError, match="elsewhere"):
        datasets.load_ocr_letters(other)


def test_corrupted_file_raises_value_error(letters_dir):
    path = letters_dir / "ocr_letters" / "letters.npz"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checksum mismatch.*letters.npz"):
        datasets.load_ocr_letters(letters_dir)


def test_checksum_cached_per_file_version(letters_dir, monkeypatch):
    """A file is hashed once per process; a changed file (new mtime) is hashed again."""
    calls = []
    real = datasets._files._sha256

    def counting(path, *args, **kwargs):
        calls.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(datasets._files, "_sha256", counting)
    datasets.load_ocr_letters(letters_dir)
    datasets.load_ocr_letters(letters_dir)
    assert calls == ["letters.npz"]
    path = letters_dir / "ocr_letters" / "letters.npz"
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0x01  # same size, new content
    path.write_bytes(bytes(raw))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(ValueError, match="letters.npz"):
        datasets.load_ocr_letters(letters_dir)
    assert calls == ["letters.npz", "letters.npz"]


def test_published_checksums_cover_every_file_read():
    assert set(datasets._files._SHA256) == {
        *(f for pair in datasets.mnist._MNIST_FILES.values() for f in pair),
        "ocr_letters/letters.npz",
        *(
            f"movie_scale/scaledata/{a}/{kind}.{a}"
            for a in datasets.MOVIE_AUTHORS
            for kind in ("subj", "rating")
        ),
    }
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in datasets._files._SHA256.values())


@needs_data
def test_data_readme_lists_the_same_checksums():
    text = (DATA / "README.md").read_text(encoding="utf-8")
    for rel, digest in datasets._files._SHA256.items():
        assert digest in text, rel
