"""cflow.Model and cflow.Oracle against the C++ API (tests/python/oracle_reference.cpp) and against
`cflow hessian --json`: the same bits on the same inputs, in float64 and float32."""
import json
import subprocess

import numpy as np
import pytest

import cflow

DTYPES = ["float64", "float32"]


def make_model(problem):
    m = problem["model"]
    sizes = dict(arch=m["arch"], width=m["width"], depth=m["depth"], activation=m["activation"], loss=m["loss"],
                 bias=m["bias"], heads=m["heads"], patch=m["patch"], output_scale=m["output_scale"])
    if m["arch"] == "transformer":  # the sorting task sets its classes and input
        return cflow.Model(**sizes, vocab_size=m["vocab_size"], length=m["length"])
    return cflow.Model(**sizes, classes=m["classes"], input_shape=m["input_shape"])


def model_and_data(problem, dtype):
    """The model, its inputs X (one example per row), targets Y, directions U (d, m) and the counted
    positions (None but for the transformer, whose data Model.sorting_data draws)."""
    model, n = make_model(problem), problem["n"]
    X = np.array(problem["inputs"]).reshape(n, -1)
    Y = np.array(problem["targets"]).reshape(n, model.outputs)
    counted = None
    if model.spec.arch == "transformer":
        X_py, Y_py, counted = model.sorting_data(n, seed=problem["seed"])
        assert np.array_equal(X_py, X) and np.array_equal(Y_py, Y)
        assert np.array_equal(counted, np.array(problem["counted"]).reshape(n, -1))
    else:
        X = X.reshape(n, *problem["model"]["input_shape"])
    U = np.array(problem["U"]).reshape(problem["directions"], model.dim).T.astype(dtype)  # (d, m)
    return model, X.astype(dtype), Y.astype(dtype), U, counted


def expected(problem, dtype, key, shape=None):
    values = np.array(problem[dtype][key], dtype=dtype)
    return values if shape is None else values.reshape(shape[::-1]).T  # column-major blocks


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["mlp-mse", "cnn-ce-binary", "vit-ce", "transformer-sorting"])
def test_oracle_equals_cpp_bit_for_bit(reference_problems, name, dtype):
    problem = reference_problems[name]
    model, X, Y, U, counted = model_and_data(problem, dtype)
    d, m = U.shape
    w = model.init(problem["seed"], dtype=dtype)
    assert w.dtype == dtype and np.array_equal(w, expected(problem, dtype, "w"))

    oracle = cflow.Oracle(model, X, Y, device="cpu", counted=counted)
    assert oracle.dtype == dtype and oracle.dim == d and oracle.examples == problem["n"]
    value, grad = oracle.value_grad(w)
    assert value == problem[dtype]["value"]
    assert grad.dtype == dtype and np.array_equal(grad, expected(problem, dtype, "grad"))
    assert np.array_equal(oracle.hvp(w, U), expected(problem, dtype, "hvp", (d, m)))
    assert np.array_equal(oracle.hvp(w, U[:, 0]), expected(problem, dtype, "hvp", (d, m))[:, 0])
    assert np.array_equal(oracle.quad(w, U), expected(problem, dtype, "quad"))
    assert np.array_equal(oracle.d3(w, U), expected(problem, dtype, "d3", (d, m * (m + 1) // 2)))
    eig = oracle.top_eigs(w, k=problem["top"], seed=problem["seed"])
    assert eig.converged
    assert np.array_equal(eig.values, expected(problem, dtype, "eigenvalues"))
    assert np.array_equal(eig.vectors, expected(problem, dtype, "eigenvectors", (d, problem["top"])))


@pytest.mark.parametrize("dtype", DTYPES)
def test_top_eigs_and_loss_equal_cflow_hessian(cflow_binary, reference_problems, dtype):
    problem = reference_problems["mlp-mse"]  # random_data(spec, n, seed), as `cflow hessian` draws it
    m = problem["model"]
    command = [cflow_binary, "hessian", "--json", "--device", "cpu", "--data", "random", "--n", str(problem["n"]),
               "--seed", str(problem["seed"]), "--top", str(problem["top"]), "--dtype", dtype.replace("float", "f"),
               "--arch", m["arch"], "--width", str(m["width"]), "--depth", str(m["depth"]),
               "--act", m["activation"], "--loss", m["loss"], "--classes", m["classes"]]
    printed = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    model, X, Y, _, _ = model_and_data(problem, dtype)
    assert printed["parameters"] == model.dim
    oracle = cflow.Oracle(model, X, Y, device="cpu")
    w = model.init(problem["seed"], dtype=dtype)
    assert oracle.value_grad(w)[0] == printed["loss"]
    assert np.array_equal(oracle.top_eigs(w, problem["top"], seed=problem["seed"]).values,
                          np.array(printed["eigenvalues"], dtype=dtype))


def test_derivatives_are_consistent():
    """Properties that would fail for a wrongly wired binding: H is symmetric, quad is the diagonal of
    UᵀHU, d3 of one direction u is ∇(uᵀHu), by central differences in float64."""
    rng = np.random.default_rng(0)
    model = cflow.Model(width=6, depth=1, classes=3, input_shape=4, activation="tanh")
    labels = rng.integers(0, 3, size=12)
    oracle = cflow.Oracle(model, rng.standard_normal((12, 4)), labels, device="cpu")
    w = model.init(1)
    U = rng.standard_normal((model.dim, 2))
    HU = oracle.hvp(w, U)
    assert abs(U[:, 0] @ HU[:, 1] - U[:, 1] @ HU[:, 0]) <= 1e-12 * np.abs(HU).max() * np.abs(U).max() * model.dim
    np.testing.assert_allclose(oracle.quad(w, U), np.einsum("ij,ij->j", U, HU), rtol=1e-12)
    u, h = U[:, 0], 1e-5
    fd = (oracle.quad(w + h * (z := rng.standard_normal(model.dim)), u[:, None])[0]
          - oracle.quad(w - h * z, u[:, None])[0]) / (2 * h)
    assert oracle.d3(w, u)[:, 0] @ z == pytest.approx(fd, rel=1e-6)
    targets = model.targets(labels)
    assert np.array_equal(targets.argmax(axis=1), labels) and np.array_equal(targets.sum(axis=1), np.ones(12))


def test_bad_input_is_a_clear_error():
    model = cflow.Model(width=4, depth=1, classes=2, input_shape=3)
    with pytest.raises(ValueError, match="features per example"):
        cflow.Oracle(model, np.zeros((5, 4)), np.zeros(5, dtype=int), device="cpu")
    oracle = cflow.Oracle(model, np.zeros((5, 3)), np.zeros(5, dtype=int), device="cpu")
    with pytest.raises(ValueError, match="w must have shape"):
        oracle.value_grad(np.zeros(model.dim + 1))
    with pytest.raises(ValueError, match="label 2"):
        model.targets([0, 2])
    with pytest.raises(cflow.Error, match="softmax"):
        cflow.Model(activation="softmax")
    with pytest.raises(ValueError, match="dtype"):
        model.init(0, dtype=np.int32)
    with pytest.raises(ValueError, match="vocab_size and length"):
        cflow.Model(arch="transformer", classes=4)
    with pytest.raises(ValueError, match="sorting task"):
        cflow.Model(arch="vit", vocab_size=4)
    with pytest.raises(cflow.Error, match="--patch 3 must divide"):
        cflow.Model(arch="vit", width=8, patch=3, input_shape=(1, 8, 8))
    with pytest.raises(cflow.Error, match="--heads 3 must divide"):
        cflow.Model(arch="transformer", width=8, heads=3)
    transformer = cflow.Model(arch="transformer", width=8, depth=1, vocab_size=4, length=3)
    X, Y, counted = transformer.sorting_data(4)
    with pytest.raises(ValueError, match="sorting_data"):
        transformer.targets([0, 1])
    with pytest.raises(ValueError, match="counted must have shape"):
        cflow.Oracle(transformer, X, Y, device="cpu", counted=counted[:, 1:])


def test_queries_from_threads_equal_serial_ones():
    """Queries release the GIL; one oracle serves concurrent threads one query at a time, each
    answer the same bits as when asked alone (the cached primal pass must not be shared wrongly)."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(2)
    model = cflow.Model(width=6, depth=2, classes=2, input_shape=3)
    oracle = cflow.Oracle(model, rng.standard_normal((20, 3)), rng.integers(0, 2, size=20), device="cpu")
    points = [model.init(seed) for seed in range(4)]
    U = rng.standard_normal((model.dim, 2))
    serial = [(oracle.value_grad(w)[1], oracle.hvp(w, U)) for w in points]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda w: (oracle.value_grad(w)[1], oracle.hvp(w, U)), points * 3))
    for i, (grad, HU) in enumerate(parallel):
        assert np.array_equal(grad, serial[i % 4][0]) and np.array_equal(HU, serial[i % 4][1])
