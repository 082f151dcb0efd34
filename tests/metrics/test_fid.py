import gzip
import struct

import numpy as np
import pytest

from genprior import data
from genprior.errors import ConfigError
from genprior.metrics import fid as fidmod
from genprior.metrics import fid_kid, fid_kid_by_class, reference_features
from tests.conftest import needs_fashion_mnist
from tests.metrics.conftest import CountingSpace, fashion, mnist_subset, needs_inception


def test_fid_of_a_shifted_copy_is_the_squared_shift():
    # Same covariance, means 3 apart in each of 2 dims: FID = |mu1 - mu2|^2 = 18 exactly.
    a = np.array([[1.0, 0], [-1, 0], [0, 2], [0, -2], [0.5, 0.5], [-0.5, -0.5], [1, 1], [-1, -1], [2, 0], [-2, 0]])
    m = fid_kid(a + 3, a, min_fid=4)
    assert m["fid"] == pytest.approx(18.0, abs=1e-6)
    assert fid_kid(a, a, min_fid=4)["fid"] == pytest.approx(0.0, abs=1e-6)
    assert m["n"] == 10 and m["n_ref"] == 10


def test_kid_by_hand_on_two_points():
    # n = 1 feature dim, m = 2 points each: k(x, y) = (x y + 1)^3.
    # x = {0, 1}, y = {0, 2}: within-x off-diagonal k(0,1) = 1 (twice), within-y k(0,2) = 1 (twice),
    # across: k(0,0) = 1, k(0,2) = 1, k(1,0) = 1, k(1,2) = 27 -> sum 30.
    # KID = [(2 + 2) / (m - 1) - 2 * 30 / m] / m = (4 - 30) / 2 = -13.
    x, y = np.array([[0.0], [1.0]]), np.array([[0.0], [2.0]])
    assert fid_kid(x, y, min_fid=10)["kid"] == pytest.approx(-13.0)


def test_too_few_images_say_why_and_keep_kid():
    a = np.random.default_rng(0).normal(size=(5, 3))
    m = fid_kid(a, a + 1)
    assert m["fid"] is None and "FID needs at least 10" in m["fid_unavailable"] and m["kid"] is not None
    one = fid_kid(a[:1], a)
    assert one["kid"] is None and "1 image;" in one["kid_unavailable"]


def test_a_square_root_that_goes_complex_is_an_unavailable_fid_not_an_error(monkeypatch):
    import cleanfid.fid

    def complex_root(*a):
        raise ValueError("Imaginary component 0.5")  # what clean-fid raises for a near-singular product

    monkeypatch.setattr(cleanfid.fid, "frechet_distance", complex_root)
    a = np.random.default_rng(0).normal(size=(12, 3))
    m = fid_kid(a, a + 1)
    assert m["fid"] is None and "not real (Imaginary component 0.5)" in m["fid_unavailable"] and m["kid"] is not None


def test_kid_is_seeded_and_leaves_numpy_alone():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(30, 4)), rng.normal(size=(40, 4))
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    assert fid_kid(a, b)["kid"] == fid_kid(a, b)["kid"]
    assert np.array_equal(np.random.get_state()[1], before)


def test_per_class_uses_the_same_class_of_the_reference():
    feats = np.array([[0.0, 0], [0, 1], [5, 5], [5, 6]])
    ref = np.array([[0.0, 0], [0, 1], [5, 5], [5, 6]])
    m = fid_kid_by_class(feats, np.array([0, 0, 1, 1]), ref, np.array([0, 0, 1, 1]), min_fid=2)
    assert m["per_class"]["0"]["fid"] == pytest.approx(0, abs=1e-9)
    swapped = fid_kid_by_class(feats, np.array([1, 1, 0, 0]), ref, np.array([0, 0, 1, 1]), min_fid=2)
    assert swapped["per_class"]["0"]["fid"] == pytest.approx(50, abs=1e-6)  # (5^2 + 5^2): the other class
    with pytest.raises(ConfigError, match="no images"):
        fid_kid_by_class(feats[:0], np.array([], int), ref, np.array([0, 0, 1, 1]))


@needs_inception
@needs_fashion_mnist
def test_real_inception_fid_kid_small_within_fashion_and_large_across_data_sets(inception):
    a, _ = fashion("train", 40)
    b, _ = fashion("train", 40, offset=1000)
    digits = mnist_subset(40)
    fa, fb, fd = inception(a), inception(b), inception(digits)
    same, across = fid_kid(fa, fb), fid_kid(fd, fb)
    assert abs(same["kid"]) < 0.01
    assert across["kid"] > 0.05 and across["kid"] > 10 * abs(same["kid"])
    assert across["fid"] > 1.5 * same["fid"]  # FID on 40 images is mostly bias; it still ranks them


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _fake_fashion(root, seed):
    rng = np.random.default_rng(seed)
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", 20), ("t10k", 30)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, size=(n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)


def _clear_split_caches():
    data._load_split.cache_clear()
    data._in_space.cache_clear()


def test_reference_cache_is_reused_and_invalidated_when_the_split_changes(tmp_path):
    root = tmp_path / "data"
    _fake_fashion(root, seed=0)
    _clear_split_caches()
    space = CountingSpace()
    space.key = "cache-test"
    f1, y1 = reference_features(space, "fashion_mnist", "test", str(root))
    assert space.seen == 30 and f1.shape == (30, 2) and list(y1[:3]) == [0, 1, 2]
    f2, _ = reference_features(space, "fashion_mnist", "test", str(root))
    assert space.seen == 30 and np.array_equal(f1, f2)  # reused, not recomputed
    reference_features(space, "fashion_mnist", "test", str(root), limit=10)
    assert space.seen == 40  # another subset is another entry
    _fake_fashion(root, seed=1)  # the split's pixels change
    _clear_split_caches()
    f3, _ = reference_features(space, "fashion_mnist", "test", str(root))
    assert space.seen == 70 and not np.array_equal(f1, f3)
    _clear_split_caches()


def test_interrupted_reference_pass_resumes(tmp_path, monkeypatch):
    root = tmp_path / "data"
    _fake_fashion(root, seed=0)
    _clear_split_caches()
    monkeypatch.setattr(fidmod, "BLOCK", 8)

    class Dies(CountingSpace):
        key = "resume-test"

        def __call__(self, unit):
            if self.seen >= 16:
                raise KeyboardInterrupt
            return super().__call__(unit)

    with pytest.raises(KeyboardInterrupt):
        reference_features(Dies(), "fashion_mnist", "test", str(root))
    space = CountingSpace()
    space.key = "resume-test"
    feats, _ = reference_features(space, "fashion_mnist", "test", str(root))
    assert space.seen == 30 - 16 and feats.shape == (30, 2)
    fresh = CountingSpace()
    fresh.key = "resume-test-fresh"  # the same pass from scratch gives the same features
    assert np.allclose(feats, reference_features(fresh, "fashion_mnist", "test", str(root))[0], atol=1e-6)
    _clear_split_caches()
