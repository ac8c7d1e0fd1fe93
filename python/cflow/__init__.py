"""cflow from Python: the derivative engine on numpy arrays, and runs of `cflow run` as numpy arrays.

    import cflow
    model = cflow.Model(arch="mlp", width=8, depth=2, classes=2, input_shape=2)
    w = model.init(seed=0)
    oracle = cflow.Oracle(model, X, labels)         # X: (n, features) float, labels: (n,) int
    loss, grad = oracle.value_grad(w)
    run = cflow.run(data="moons", n=64, width=8, steps=5)   # or cflow.load_run("runs/...")
    run["discrete/train_loss"], run.to_pandas()

See docs/design.md §3 (the oracle), §5 (eigenvalues) and §8 (the outputs a run writes).
"""
from cflow._core import Error, __version__
from cflow.engine import Eigen, Model, Oracle
from cflow.experiment import RunError, run
from cflow.runs import Run, load_run

__all__ = ["Eigen", "Error", "Model", "Oracle", "Run", "RunError", "__version__", "load_run", "run"]
