"""The ann-benchmarks HDF5 export against brute-force neighbours and scipy's distances."""

import h5py
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from cbir.retrieval.ann_benchmarks import read_ann_benchmarks_hdf5, write_ann_benchmarks_hdf5


@pytest.mark.parametrize("distance, scipy_name", [("angular", "cosine"), ("euclidean", "euclidean")])
def test_neighbours_and_distances_match_brute_force(tmp_path, distance, scipy_name):
    rng = np.random.default_rng(0)
    train, test = rng.standard_normal((300, 16)).astype(np.float32), rng.standard_normal((20, 16)).astype(np.float32)
    path = write_ann_benchmarks_hdf5(tmp_path / "set.hdf5", train, test, k=25, distance=distance)
    data = read_ann_benchmarks_hdf5(path)
    reference = cdist(test.astype(np.float64), train.astype(np.float64), scipy_name)
    np.testing.assert_array_equal(data["neighbors"], np.argsort(reference, axis=1, kind="stable")[:, :25])
    np.testing.assert_allclose(data["distances"], np.sort(reference, axis=1)[:, :25], atol=1e-5)
    np.testing.assert_array_equal(data["train"], train)
    assert data["distance"] == distance and data["neighbors"].dtype == np.int32
    with h5py.File(path) as file:
        assert file.attrs["dimension"] == 16 and file.attrs["point_type"] == "float"


def test_errors_name_the_problem(tmp_path):
    x = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match="distance must be one of"):
        write_ann_benchmarks_hdf5(tmp_path / "a.hdf5", x, x, distance="hamming")
    with pytest.raises(FileNotFoundError, match="nothing.hdf5"):
        read_ann_benchmarks_hdf5(tmp_path / "nothing.hdf5")
    with h5py.File(tmp_path / "other.hdf5", "w") as file:
        file.create_dataset("train", data=x)
    with pytest.raises(ValueError, match="not an ann-benchmarks file"):
        read_ann_benchmarks_hdf5(tmp_path / "other.hdf5")
