"""The model description and the derivative oracle (docs/design.md §3, §5) on numpy arrays.

Layouts: w is a vector (d,); X holds one example per row, (n, features) or (n, C, H, W) for a CNN
(NCHW, as PyTorch flattens it); targets are integer labels (n,), encoded as `cflow run` does, or a
float array (n, outputs); a block of directions U is (d, m), one direction per column, or (d,) for
one. Arrays of float32 or float64 are accepted; an oracle computes in its dtype (the dtype of X by
default) and returns arrays of that dtype. Queries release the GIL while they run.
"""
from collections import namedtuple

import numpy as np

from cflow import _core

Eigen = namedtuple("Eigen", "values vectors converged iterations residuals")
Eigen.__doc__ = """Top eigenpairs of the Hessian: values (k,) descending, vectors (d, k) orthonormal,
whether LOBPCG converged, its iterations and each column's relative residual."""

_DTYPES = {np.dtype(np.float64): "float64", np.dtype(np.float32): "float32"}


def _dtype_name(dtype):
    try:
        return _DTYPES[np.dtype(dtype)]
    except (KeyError, TypeError):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}") from None


class Model:
    """A network and its loss, with the settings of `cflow run` (--arch --width --depth --act --loss
    --classes --no-bias --heads --patch --output-scale). classes: an int N >= 2 (N outputs) or
    "binary" (one output). input_shape: the features of one example, an int or (channels, height,
    width); a ViT needs an image whose sides the patch divides.

    arch="transformer" is the model of the sorting task (`--data sorting --vocab-size --length`): its
    classes are the vocabulary and its input the task's tokens, so classes and input_shape are not
    given; vocab_size and length (cflow's defaults when None) are given only for it, and
    sorting_data() draws its data."""

    def __init__(self, arch="mlp", width=256, depth=2, activation="gelu", loss="mse", classes=None,
                 input_shape=None, bias=True, heads=2, patch=4, output_scale=0.0, vocab_size=None, length=None):
        sorting = arch == "transformer"
        if sorting and (classes is not None or input_shape is not None):
            raise ValueError("arch='transformer' takes vocab_size and length (the sorting task), not classes or "
                             "input_shape")
        if not sorting and (vocab_size is not None or length is not None):
            raise ValueError(f"vocab_size and length set the sorting task of arch='transformer', not of {arch!r}")
        default_vocab, default_length = _core.sorting_defaults
        self.sorting = (default_vocab if vocab_size is None else int(vocab_size),
                        default_length if length is None else int(length))
        input_shape = 784 if input_shape is None else input_shape
        shape = (input_shape, 1, 1) if np.ndim(input_shape) == 0 else tuple(input_shape)
        if len(shape) != 3:
            raise ValueError(f"input_shape must be an int or (channels, height, width), got {input_shape!r}")
        self.spec = _core.ModelSpec(arch=arch, width=int(width), depth=int(depth), activation=activation,
                                    loss=loss, classes=str(4 if classes is None else classes),
                                    input_shape=tuple(int(x) for x in shape), bias=bool(bias), heads=int(heads),
                                    patch=int(patch), output_scale=float(output_scale),
                                    vocab_size=self.sorting[0], length=self.sorting[1])

    @property
    def dim(self):
        """The number of parameters d."""
        return _core.parameter_count(self.spec)

    @property
    def outputs(self):
        """Outputs per example: the classes (1 for binary) times the positions (the transformer's tokens)."""
        return self.spec.outputs * self.spec.positions

    def init(self, seed=0, dtype=np.float64):
        """The initial parameters of `cflow run --seed seed` (PyTorch's default initialization, drawn
        in float64 and rounded to dtype)."""
        return getattr(_core, "initial_parameters_" + _dtype_name(dtype))(self.spec, int(seed))

    def targets(self, labels):
        """Integer labels (n,) as the float targets (n, outputs) the loss compares outputs with."""
        if self.spec.positions != 1:
            raise ValueError("a transformer's targets come with its data: use sorting_data()")
        return _core.targets_from_labels(self.spec, np.asarray(labels))

    def sorting_data(self, n, seed=0):
        """The transformer's data: n sequences of the sorting task as `cflow run --data sorting --seed
        seed` draws its training set. Returns (X (n, tokens), targets (n, outputs), counted (n, tokens)),
        float64; counted is 1 where a position's loss counts, 0 where it is masked (pass it to Oracle)."""
        return _core.sorting_data(self.spec, self.sorting[0], self.sorting[1], int(n), int(seed))

    def __repr__(self):
        s = self.spec
        sizes = {"vit": f", heads={s.heads}, patch={s.patch}",
                 "transformer": f", heads={s.heads}, output_scale={s.output_scale}, vocab_size={self.sorting[0]}, "
                                f"length={self.sorting[1]}"}.get(s.arch, "")
        return (f"cflow.Model(arch={s.arch!r}, width={s.width}, depth={s.depth}{sizes}, activation={s.activation!r}, "
                f"loss={s.loss!r}, outputs={self.outputs}, input_shape={s.input_shape}, bias={s.bias})")


class Oracle:
    """value_grad, hvp, quad, d3 and top_eigs of a model's full-batch loss on (X, y), on a device:
    "cpu", "cuda", "cuda:N" or "auto" (a usable GPU, else the CPU). threads > 0 sets the CPU thread
    count (results are reproducible bit for bit for the same thread count). chunk and max_directions
    bound memory as in `cflow run --chunk`. counted (n, positions): the transformer's mask of the
    positions whose loss counts (from Model.sorting_data); None: every position counts."""

    def __init__(self, model, X, y, dtype=None, device="auto", threads=0, chunk=0, max_directions=16, counted=None):
        X = np.asarray(X)
        name = _dtype_name(X.dtype if dtype is None and X.dtype in _DTYPES else dtype or np.float64)
        self.dtype = np.dtype(name)
        y = np.asarray(y)
        targets = model.targets(y) if np.issubdtype(y.dtype, np.integer) else y.reshape(len(y), -1)
        core = _core.Oracle64 if name == "float64" else _core.Oracle32
        self.model = model
        mask = None if counted is None else np.asarray(counted).reshape(len(y), -1).astype(self.dtype, copy=False)
        self._core = core(model.spec, X.astype(self.dtype, copy=False), targets.astype(self.dtype, copy=False),
                          mask, device, int(threads), int(chunk), int(max_directions))

    @property
    def dim(self):
        return self._core.dim

    @property
    def examples(self):
        return self._core.examples

    @property
    def device(self):
        """The device in words, e.g. "CPU: 2 OpenMP threads, OpenBLAS"."""
        return self._core.device

    def value_grad(self, w):
        """(L(w), ∇L(w)): the mean loss as a Python float and the gradient (d,)."""
        return self._core.value_grad(w)

    def hvp(self, w, U):
        """H(w) U for U (d,) or (d, m)."""
        return self._core.hvp(w, U)

    def quad(self, w, U):
        """u_jᵀ H(w) u_j for each column of U (d, m): an array (m,)."""
        return self._core.quad(w, U)

    def d3(self, w, U):
        """∇_w(u_iᵀ H(w) u_j) for every pair i <= j of the k columns of U: (d, k(k+1)/2), pairs in the
        order (0,0), (0,1), ..., (0,k-1), (1,1), ... (cflow::pair_index)."""
        return self._core.d3(w, U)

    def top_eigs(self, w, k=1, tolerance=None, max_iterations=200, seed=0):
        """The k largest Hessian eigenpairs at w by LOBPCG, as `cflow hessian --top k` computes them
        (default tolerance 1e-8 in float64, 1e-4 in float32). Returns an Eigen."""
        if tolerance is None:
            tolerance = 1e-8 if self.dtype == np.float64 else 1e-4
        return Eigen(*self._core.top_eigs(w, int(k), float(tolerance), int(max_iterations), int(seed)))
