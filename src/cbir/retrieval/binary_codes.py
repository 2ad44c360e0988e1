"""Unsupervised binary codes: the baselines of deep hashing papers, DLBHC's among them.

* `SignLSH` — sign random projections (Charikar, STOC 2002): bit j of x is [wⱼ · (x − μ) > 0] for a
  Gaussian wⱼ, so two vectors at angle θ (after centring) agree on a bit with probability 1 − θ / π.
* `ITQ` — iterative quantisation (Gong & Lazebnik, CVPR 2011; TPAMI 2013): centre, project on the top
  principal directions, then find the rotation R minimising the quantisation loss ‖B − V R‖²_F by
  alternating B = sign(V R) and the orthogonal Procrustes solution R = U Wᵀ of the SVD of Vᵀ B.

Both are fitted on database features and encode as bool arrays (n, bits); `cbir.retrieval.hamming.pack_codes`
packs them for Hamming search. ``get_state`` / ``from_state`` give JSON parameters plus arrays, so a
fitted encoder is saved without pickle.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ENCODERS", "ITQ", "SignLSH", "make_encoder"]


def _as_features(features: np.ndarray, dim: int | None = None) -> np.ndarray:
    """float64 (n, dim); ValueError for another rank, no rows when fitting (dim None), or another width."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"features must be 2-D (n, dim), got shape {features.shape}")
    if dim is None and (len(features) == 0 or features.shape[1] == 0):
        raise ValueError(f"fitting needs at least one row of at least one column, got shape {features.shape}")
    if dim is not None and features.shape[1] != dim:
        raise ValueError(f"features have dimension {features.shape[1]}, the encoder was fitted on {dim}")
    return features


def _check_state(name: str, arrays: dict[str, np.ndarray], shapes: dict[str, tuple]) -> dict[str, np.ndarray]:
    """The state arrays as float64, each checked against its expected shape (None: any length)."""
    checked = {}
    for key, shape in shapes.items():
        if key not in arrays:
            raise ValueError(f"{name} state lacks array {key!r}")
        array = np.asarray(arrays[key], dtype=np.float64)
        if array.ndim != len(shape) or any(want is not None and have != want for have, want in zip(array.shape, shape)):
            raise ValueError(f"{name} state array {key!r} must have shape {shape}, got {array.shape}")
        checked[key] = array
    return checked


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


class SignLSH:
    """Sign random projections through the data mean (Charikar 2002).

    Args:
        bits: code length (≥ 1); any length, also above the dimension.
        seed: seed of the Gaussian hyperplanes (≥ 0).
    Attributes (after `fit`):
        mean: float64 (dim,); projections: float64 (dim, bits), the hyperplanes' normals, N(0, 1) entries.
    Raises:
        ValueError: bits < 1 or seed < 0.
    """

    name = "lsh"

    def __init__(self, bits: int, seed: int = 0):
        self.bits, self.seed = _check_int("bits", bits, 1), _check_int("seed", seed, 0)
        self.mean: np.ndarray | None = None
        self.projections: np.ndarray | None = None

    def fit(self, features: np.ndarray) -> SignLSH:
        """Draw `bits` hyperplanes through the mean of `features` (float, (n, dim)); returns self.

        Raises:
            ValueError: features not 2-D or empty.
        """
        features = _as_features(features)
        self.mean = features.mean(axis=0)
        self.projections = np.random.default_rng(self.seed).standard_normal((features.shape[1], self.bits))
        return self

    def encode(self, features: np.ndarray) -> np.ndarray:
        """bool (n, bits): which side of each hyperplane each row lies on.

        Raises:
            ValueError: not fitted, or features of another dimension.
        """
        if self.projections is None:
            raise ValueError("SignLSH is not fitted: call fit(database_features) first")
        return (_as_features(features, len(self.mean)) - self.mean) @ self.projections > 0

    def get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON parameters, arrays) of the fitted encoder: ``mean`` and ``projections``.

        Raises:
            ValueError: not fitted.
        """
        if self.projections is None:
            raise ValueError("SignLSH is not fitted: nothing to save")
        return {"name": self.name, "bits": self.bits, "seed": self.seed}, {
            "mean": self.mean,
            "projections": self.projections,
        }

    @classmethod
    def from_state(cls, params: dict, arrays: dict[str, np.ndarray]) -> SignLSH:
        """The encoder `get_state` described (``seed`` defaults to 0).

        Raises:
            ValueError: a missing parameter or array, or arrays of the wrong shapes.
        """
        encoder = cls(params["bits"], params.get("seed", 0))
        dim = np.shape(arrays.get("mean", ()))[0] if np.ndim(arrays.get("mean", ())) == 1 else None
        state = _check_state("SignLSH", arrays, {"mean": (None,), "projections": (dim, encoder.bits)})
        encoder.mean, encoder.projections = state["mean"], state["projections"]
        return encoder


class ITQ:
    """Iterative quantisation: PCA to `bits` dimensions, then a learned rotation (Gong & Lazebnik 2011).

    Args:
        bits: code length, at most the features' dimension and the number of training vectors.
        iterations: alternations of sign and Procrustes steps (the paper uses 50).
        seed: seed of the initial random rotation and of the training sample.
        sample: the projection and rotation are learned on a seeded sample of at most this many rows
            (the mean on all of them): 10⁵ rows estimate a dim × dim covariance and a bits × bits
            rotation well, and keep fitting 10⁶ vectors to seconds.
    Attributes (after `fit`):
        mean: float64 (dim,); components: float64 (dim, bits), the principal directions;
        rotation: float64 (bits, bits), orthogonal; losses: the quantisation loss ‖B − V R‖²_F
        before each update of R (non-increasing).
    Raises:
        ValueError: bits < 1, iterations < 0, seed < 0 or sample < 1.
    """

    name = "itq"

    def __init__(self, bits: int, iterations: int = 50, seed: int = 0, sample: int = 100_000):
        self.bits, self.iterations = _check_int("bits", bits, 1), _check_int("iterations", iterations, 0)
        self.seed, self.sample = _check_int("seed", seed, 0), _check_int("sample", sample, 1)
        self.mean: np.ndarray | None = None
        self.components: np.ndarray | None = None
        self.rotation: np.ndarray | None = None
        self.losses: list[float] = []

    def fit(self, features: np.ndarray) -> ITQ:
        """Learn the projection and rotation on `features` (float, (n, dim)).

        Returns:
            self.
        Raises:
            ValueError: features not 2-D or empty, or bits above the dimension or the number of rows.
        """
        features = _as_features(features)
        if self.bits > min(features.shape):
            raise ValueError(
                f"ITQ needs bits <= dimension and <= number of vectors; got {self.bits} bits for {features.shape}"
            )
        self.mean = features.mean(axis=0)
        rng = np.random.default_rng(self.seed)
        rows = np.sort(rng.choice(len(features), self.sample, replace=False)) if len(features) > self.sample else None
        centred = (features if rows is None else features[rows]) - self.mean
        # Principal directions from the covariance's eigenvectors (dim × dim; cheap for dim ≤ a few thousand).
        eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)
        self.components = eigenvectors[:, np.argsort(eigenvalues)[::-1][: self.bits]]
        projected = centred @ self.components
        rotation, _ = np.linalg.qr(rng.standard_normal((self.bits, self.bits)))
        self.losses = []
        for _ in range(self.iterations):
            rotated = projected @ rotation
            codes = np.where(rotated >= 0, 1.0, -1.0)
            self.losses.append(float(np.sum((codes - rotated) ** 2)))
            u, _, vt = np.linalg.svd(projected.T @ codes)  # orthogonal Procrustes: argmin_R ‖B − V R‖
            rotation = u @ vt
        self.rotation = rotation
        return self

    def encode(self, features: np.ndarray) -> np.ndarray:
        """bool (n, bits): sign of the rotated principal projections.

        Raises:
            ValueError: not fitted, or features of another dimension.
        """
        if self.rotation is None:
            raise ValueError("ITQ is not fitted: call fit(database_features) first")
        return (_as_features(features, len(self.mean)) - self.mean) @ self.components @ self.rotation >= 0

    def get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON parameters, arrays) of the fitted encoder: ``mean``, ``components``, ``rotation``.

        Raises:
            ValueError: not fitted.
        """
        if self.rotation is None:
            raise ValueError("ITQ is not fitted: nothing to save")
        params = {"name": self.name, "bits": self.bits, "iterations": self.iterations, "seed": self.seed,
                  "sample": self.sample}  # fmt: skip
        return params, {"mean": self.mean, "components": self.components, "rotation": self.rotation}

    @classmethod
    def from_state(cls, params: dict, arrays: dict[str, np.ndarray]) -> ITQ:
        """The encoder `get_state` described (``iterations``, ``seed``, ``sample`` default as in `ITQ`).

        Raises:
            ValueError: a missing parameter or array, arrays of the wrong shapes, or a rotation that is
                not orthogonal.
        """
        defaults = {"iterations": 50, "seed": 0, "sample": 100_000}
        encoder = cls(params["bits"], **{key: params.get(key, value) for key, value in defaults.items()})
        bits = encoder.bits
        dim = np.shape(arrays.get("mean", ()))[0] if np.ndim(arrays.get("mean", ())) == 1 else None
        state = _check_state("ITQ", arrays, {"mean": (None,), "components": (dim, bits), "rotation": (bits, bits)})
        if not np.allclose(state["rotation"].T @ state["rotation"], np.eye(bits), atol=1e-6):
            raise ValueError("ITQ state array 'rotation' is not orthogonal")
        encoder.mean, encoder.components, encoder.rotation = state["mean"], state["components"], state["rotation"]
        return encoder


ENCODERS = {"lsh": SignLSH, "itq": ITQ}
"""Encoder name → class."""


def make_encoder(name: str, bits: int, seed: int = 0) -> SignLSH | ITQ:
    """An unfitted encoder by name (``"lsh"`` or ``"itq"``), its other parameters at their defaults.

    Raises:
        ValueError: an unknown name (the valid ones listed), or bits / seed out of range.
    """
    if name not in ENCODERS:
        raise ValueError(f"unknown binary encoder {name!r}; expected one of {sorted(ENCODERS)}")
    return ENCODERS[name](bits, seed=seed)
