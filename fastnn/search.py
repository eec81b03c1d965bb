"""Hyper-parameter search with fastnn: many training runs spread over a cluster, and trials stopped early.

- scikit-learn searches (GridSearchCV, RandomizedSearchCV, cross_validate) of fastnn.MLPClassifier /
  MLPRegressor run under `joblib.parallel_backend("dask")` (a dask.distributed Client) or `("ray")` like under
  the default backend, with the same results. In a Dask or Ray worker an estimator with n_threads=None trains
  on one thread (on Ray: the CPUs Ray assigned to the task), so the workers, not OpenMP teams inside each of
  them, share the cores; give n_threads to choose otherwise. Outside such workers n_threads=None follows
  fastnn.get_num_threads(), which threadpoolctl's threadpool_limits(..., user_api="openmp") and
  OMP_NUM_THREADS bound.
- OptunaPruningCallback(trial): a Network.fit callback that reports the validation loss to an Optuna trial after
  each epoch and stops the trial when Optuna's pruner says so.
"""
import math
import sys

__all__ = ["OptunaPruningCallback", "cluster_worker_threads"]


def cluster_worker_threads():
    """The threads one training run should use when running as a task of a Dask or Ray worker: 1 in a Dask
    worker (each of its threads runs a task), the CPUs Ray assigned to the task in a Ray worker; None when not in
    such a worker. Only looks when dask.distributed or ray is already imported."""
    if "distributed" in sys.modules:
        try:
            from distributed import get_worker
            get_worker()
            return 1
        except (ImportError, ValueError):
            pass
    ray = sys.modules.get("ray")
    if ray is not None:
        try:
            if ray.is_initialized():
                cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
                if cpus:
                    return max(1, int(cpus))
        except Exception:  # an older or partial Ray: leave the threads alone
            pass
    return None


class OptunaPruningCallback:
    """A Network.fit callback for Optuna: after each epoch, trial.report(history[monitor][-1], epoch), and
    optuna.TrialPruned is raised (ending fit) when trial.should_prune(). monitor: "val_loss" (the default; fit
    needs validation_data or validation_split) or any other history key, e.g. "loss" or "val_accuracy" (a study
    that maximises should then be created with direction="maximize").

        def objective(trial):
            net = fastnn.Network([784, trial.suggest_int("units", 32, 256), 10], loss="cross_entropy")
            history = net.fit(X, y, epochs=20, validation_split=0.2,
                              learning_rate=trial.suggest_float("lr", 1e-4, 1e-1, log=True),
                              callbacks=[fastnn.search.OptunaPruningCallback(trial)])
            return history["val_loss"][-1]
    """

    def __init__(self, trial, monitor="val_loss"):
        try:
            import optuna
        except ImportError:
            raise ImportError("OptunaPruningCallback needs optuna: pip install optuna") from None
        self._optuna = optuna
        self.trial = trial
        self.monitor = monitor

    def __call__(self, epoch, history):
        values = history.get(self.monitor)
        if not values:
            raise ValueError(f"OptunaPruningCallback: fit's history has no {self.monitor!r} (it has "
                             f"{sorted(history)}); fit with validation data to monitor 'val_loss'")
        value = float(values[-1])
        if not math.isfinite(value):
            raise self._optuna.TrialPruned(f"{self.monitor} is {value} at epoch {epoch}")
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            raise self._optuna.TrialPruned(f"pruned at epoch {epoch} with {self.monitor} {value:.6g}")
        return None
