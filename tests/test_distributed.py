"""Training on several processes: DataParallel and FedAvg over MPI (`mpirun -n 2` running
tests/distributed_ranks.py, compared here with single-process training on the same global batches), a rank
that gets a NaN, dies or hangs, and the hyper-parameter searches under joblib's dask and ray backends and
Optuna. Each part is skipped when what it needs (mpi4py and mpirun, dask, ray, optuna) is missing."""
import importlib.util
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import fastnn

HERE = os.path.dirname(os.path.abspath(__file__))
RANKS = os.path.join(HERE, "distributed_ranks.py")
import distributed_ranks as ranks  # noqa: E402  (the data and networks the ranks use)

needs_mpi = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or shutil.which("mpirun") is None,
                               reason="needs mpi4py and mpirun")


def mpirun(scenario, out, timeout=120):
    """Runs the scenario on 2 ranks; returns the CompletedProcess (stdout and stderr together)."""
    command = ["mpirun", "-n", "2"]
    try:
        version = subprocess.run(["mpirun", "--version"], capture_output=True, text=True, timeout=30).stdout
    except subprocess.TimeoutExpired:
        version = ""
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__))))
    if "Open MPI" in version or "OpenRTE" in version:
        command.append("--oversubscribe")
        # waiting ranks yield their core (they may share cores with each other and with other work)
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                   OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_mpi_yield_when_idle="1")
    command += [sys.executable, RANKS, scenario, str(out)]
    # a session of its own, so that on a timeout the launcher and every rank are killed, not the launcher only
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          start_new_session=True) as process:
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            pytest.fail(f"mpirun {scenario} did not finish within {timeout} s:\n{output[-4000:]}")
    return subprocess.CompletedProcess(command, process.returncode, output)


def relative(a, b):
    return np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b)


# ------------------------------------------------------------------------------------------------- MPI
@pytest.fixture(scope="module")
def equivalence(tmp_path_factory):
    """What each rank of the "equivalence" scenario saved (one 2-rank run for all the tests that use it)."""
    out = str(tmp_path_factory.mktemp("equivalence"))
    done = mpirun("equivalence", out)
    assert done.returncode == 0, done.stdout[-4000:]
    return [dict(np.load(os.path.join(out, f"rank{r}.npz"))) for r in range(2)]


def single_process_reference(dtype, backend, n_rows, epochs=20, batch=4):
    """The parameters and per-epoch losses of one process training, by train_step, on the global batches two
    ranks make: step b of an epoch trains on the union of each rank's b-th batch of its shard."""
    X, y = ranks.data(80)
    shards = [ranks.shard(n_rows, r) for r in range(2)]
    net = ranks.network(dtype, backend, seed=0)
    steps = max(-(-len(s) // batch) for s in shards)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for b in range(steps):
            rows = np.concatenate([s[b * batch:(b + 1) * batch] for s in shards])
            total += net.train_step(X[rows], y[rows], optimizer="adam", learning_rate=0.01) * len(rows)
        losses.append(total / sum(n_rows))
    return net._params, np.array(losses)


@needs_mpi
@pytest.mark.parametrize("case, dtype, backend, n_rows, rtol", [
    ("f64_c", "float64", "c", (40, 40), 1e-12),
    ("f32_c", "float32", "c", (40, 40), 1e-6),
    ("f64_c_python_hook", "float64", "c", (40, 40), 1e-12),
    ("f64_py", "float64", "python", (40, 40), 1e-12),
    ("f64_c_uneven", "float64", "c", (40, 26), 1e-12),
    ("f64_py_uneven", "float64", "python", (40, 26), 1e-12),
])
def test_data_parallel_equals_one_process_on_the_global_batches(equivalence, case, dtype, backend, n_rows, rtol):
    if backend == "c" and not fastnn._backend.c_available():
        pytest.skip("the C extension is not built")
    params, losses = single_process_reference(dtype, backend, n_rows)
    rank0, rank1 = equivalence
    assert int(rank0[case + "_steps"]) == 200  # 20 epochs of max(ceil(40 / 4), ceil(26 / 4)) steps
    assert relative(rank0[case], params) < rtol
    np.testing.assert_allclose(rank0[case + "_loss"], losses, rtol=max(rtol, 1e-12))
    # the ranks are bitwise equal, and agree on the history
    assert np.array_equal(rank0[case], rank1[case])
    assert np.array_equal(rank0[case + "_loss"], rank1[case + "_loss"])
    assert np.array_equal(rank0[case + "_accuracy"], rank1[case + "_accuracy"])
    want_hook = "python" if backend == "python" or case.endswith("python_hook") else "c"
    assert str(rank0[case + "_hook"]) == want_hook


@needs_mpi
@pytest.mark.parametrize("n_rows", [(40, 40), (40, 26)])
def test_fedavg_one_full_batch_sgd_epoch_equals_data_parallel(equivalence, n_rows):
    key = "_".join(map(str, n_rows))
    rank0, rank1 = equivalence
    # the single-process reference: full-batch SGD on the union of the shards
    X, y = ranks.data(80)
    rows = np.concatenate([ranks.shard(n_rows, r) for r in range(2)])
    net = ranks.network("float64", None, seed=0)
    for _ in range(30):
        net.train_step(X[rows], y[rows], optimizer="sgd", learning_rate=0.5)
    assert relative(rank0["dp_full_" + key], net._params) < 1e-12
    assert relative(rank0["fedavg_" + key], rank0["dp_full_" + key]) < 1e-12
    assert np.array_equal(rank0["fedavg_" + key], rank1["fedavg_" + key])


def fedavg_reference(local_epochs, clients_per_round):
    """FedAvg written out in one process: per round, each chosen client trains from the average on its shard,
    then the average of their parameters weighted by their sample counts. Returns the parameters and losses."""
    X, y = ranks.data(80)
    shards = [ranks.shard((40, 26), r) for r in range(2)]
    average = ranks.network("float64", None, seed=0)._params.copy()
    losses = []
    for chosen in clients_per_round:
        total, count, weighted = 0.0, 0, np.zeros_like(average)
        for r in chosen:
            client = ranks.network("float64", None, seed=0)
            client._params[...] = average
            history = client.fit(X[shards[r]], y[shards[r]], epochs=local_epochs, batch_size=8, shuffle=False,
                                 optimizer="sgd", learning_rate=0.2)
            total += sum(history["loss"]) * len(shards[r])
            count += local_epochs * len(shards[r])
            weighted += len(shards[r]) * client._params
        average = weighted / sum(len(shards[r]) for r in chosen)
        losses.append(total / count)
    return average, np.array(losses)


@needs_mpi
def test_fedavg_local_epochs_and_fraction_follow_the_algorithm(equivalence):
    rank0, rank1 = equivalence
    params, losses = fedavg_reference(2, [[0, 1]] * 3)
    assert relative(rank0["fedavg_e2"], params) < 1e-12
    np.testing.assert_allclose(rank0["fedavg_e2_loss"], losses, rtol=1e-12)
    # fraction 0.5 of 2 ranks: one client per round, drawn by the generator seeded with FedAvg's seed
    draws = np.random.default_rng(7)
    chosen = [list(draws.choice(2, size=1, replace=False)) for _ in range(3)]
    params, losses = fedavg_reference(1, chosen)
    assert relative(rank0["fedavg_half"], params) < 1e-12
    np.testing.assert_allclose(rank0["fedavg_half_loss"], losses, rtol=1e-12)
    for key in ("fedavg_e2", "fedavg_half"):
        assert np.array_equal(rank0[key], rank1[key])


@needs_mpi
def test_ranks_agree_on_validation_metrics_early_stopping_and_callbacks(equivalence):
    rank0, rank1 = equivalence
    for key in ("early_val_loss", "early_val_accuracy", "early_params"):
        assert np.array_equal(rank0[key], rank1[key])
    # min_delta=10 never counts as an improvement after the first epoch: patience 2 stops after epoch 3
    assert len(rank0["early_val_loss"]) == 3
    # the validation loss is the mean over both ranks' validation shards (12 rows each)
    local = [float(rank0["early_local_val_loss"]), float(rank1["early_local_val_loss"])]
    assert rank0["early_local_val_loss"] != rank1["early_local_val_loss"]
    np.testing.assert_allclose(rank0["early_val_loss"][-1], np.mean(local), rtol=1e-12)
    assert int(rank0["callback_epochs"]) == int(rank1["callback_epochs"]) == 3


@needs_mpi
def test_a_communicator_of_one_rank_changes_nothing(equivalence):
    for rank in equivalence:
        assert np.array_equal(rank["self_dp"], rank["self_plain"])


@needs_mpi
def test_nan_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    done = mpirun("nonfinite", tmp_path)
    assert done.returncode == 0, done.stdout[-4000:]
    rank0, rank1 = [np.load(os.path.join(tmp_path, f"rank{r}.npz")) for r in range(2)]
    assert int(rank0["epochs"]) == int(rank1["epochs"]) == 0  # the NaN batch is in the first epoch
    assert "diverged in epoch 1" in str(rank0["message"])
    assert str(rank0["message"]) == str(rank1["message"])
    assert np.array_equal(rank0["params"], rank1["params"])
    # the restored weights are rank 0's initial ones (the epoch's updates were undone)
    assert np.array_equal(rank0["params"], ranks.regression_network(seed=0)._params)


@needs_mpi
def test_a_step_that_fails_on_one_rank_stops_the_others_at_the_same_step(tmp_path):
    done = mpirun("step_fails", tmp_path, timeout=60)
    assert done.returncode == 0, done.stdout[-4000:]
    errors = [str(np.load(os.path.join(tmp_path, f"rank{r}.npz"))["error"]) for r in range(2)]
    assert errors[1] == "RuntimeError: injected failure"
    assert errors[0].startswith("DistributedError: net_train_epoch: another rank's training step failed")


@needs_mpi
@pytest.mark.parametrize("how", ["kill", "hang"])
def test_a_dead_rank_makes_the_others_fail_instead_of_hanging(tmp_path, how):
    done = mpirun(how, tmp_path, timeout=90)  # a hang would raise subprocess.TimeoutExpired
    assert done.returncode != 0
    assert "finished training" not in done.stdout
    if how == "hang":  # the watchdog of rank 0 explains and aborts
        assert "rank 0 has waited" in done.stdout and "a rank has died or hangs" in done.stdout


def test_import_fastnn_does_not_import_mpi4py():
    code = "import sys, fastnn, fastnn.distributed; assert 'mpi4py' not in sys.modules"
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__))))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_without_mpi4py_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r"pip install 'fastnn\[mpi\]'"):
        fastnn.distributed.DataParallel()
    with pytest.raises(ImportError, match="mpi4py"):
        fastnn.distributed.FedAvg(local_epochs=2)


def test_fit_refuses_an_unknown_distributed_strategy():
    net = fastnn.Network([2, 2])
    with pytest.raises(TypeError, match="distributed must be"):
        net.fit(np.zeros((4, 2)), np.zeros((4, 2)), distributed="mpi")


# ------------------------------------------------------------------------------------- searches on clusters
def _search(backend_name=None, **backend_options):
    """A small grid search of fastnn.MLPClassifier; under joblib's `backend_name` backend when given. Returns the
    search and, per fit, the threads its network used."""
    import joblib
    from sklearn.model_selection import GridSearchCV
    X, y = ranks.data(120, seed=3)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    search = GridSearchCV(fastnn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0),
                          {"alpha": [1e-4, 1.0], "hidden_layer_sizes": [(3,), (12,)]}, cv=3, n_jobs=2)
    if backend_name is None:
        search.set_params(n_jobs=1)
        return search.fit(X, y)
    with joblib.parallel_backend(backend_name, **backend_options):
        return search.fit(X, y)


def _threads_in_worker():
    """What an estimator's network trains with in the current worker."""
    est = fastnn.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2)
    est.fit(*ranks.data(20))
    return est._network.n_threads


def _same_search(got, want):
    assert got.best_params_ == want.best_params_
    np.testing.assert_allclose(got.cv_results_["mean_test_score"], want.cv_results_["mean_test_score"],
                               rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def default_search():
    pytest.importorskip("sklearn")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of the short fits
        return _search()


def test_grid_search_under_dask_matches_the_default_backend(default_search):
    pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    import joblib
    import warnings
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2,
                            dashboard_address=None) as client, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _same_search(_search("dask"), default_search)
        # one fastnn thread per task: the worker's threads share the cores
        assert client.submit(_threads_in_worker, pure=False).result() == 1
        with joblib.parallel_backend("dask"):
            assert joblib.Parallel(n_jobs=2)(joblib.delayed(_threads_in_worker)() for _ in range(2)) == [1, 1]
    assert _threads_in_worker() is None  # outside a worker: fastnn.get_num_threads()


def test_grid_search_under_ray_matches_the_default_backend(default_search):
    ray = pytest.importorskip("ray")
    from ray.util.joblib import register_ray
    import warnings
    register_ray()
    # the workers import this file's helpers by name
    path = os.pathsep.join([HERE, os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))])
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 runtime_env={"env_vars": {"PYTHONPATH": path}})
    except Exception as exc:  # e.g. a container without the shared memory Ray's object store wants
        pytest.skip(f"a local Ray does not start here: {exc!r}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _same_search(_search("ray"), default_search)
        assert ray.get(ray.remote(num_cpus=1)(_threads_in_worker).remote()) == 1
    finally:
        ray.shutdown()


def test_optuna_pruning_callback_reports_val_loss_and_prunes():
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y = ranks.data(200, seed=4)
    y = (X[:, 0] > 0).astype(int)
    reported = {}

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-5, 1.0, log=True)
        net = fastnn.Network([ranks.N_FEATURES, 8, 2], loss="cross_entropy", seed=0)
        keep = lambda epoch, history: reported.__setitem__(trial.number, list(history["val_loss"]))  # noqa: E731
        history = net.fit(X, y, epochs=8, batch_size=32, learning_rate=lr, validation_split=0.25,
                          callbacks=[keep, fastnn.search.OptunaPruningCallback(trial)])
        return history["val_loss"][-1]

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
    study.optimize(objective, n_trials=12)
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.PRUNED in states
    for t in study.trials:  # each epoch's val_loss was reported, at its epoch
        assert t.intermediate_values == dict(enumerate(reported[t.number][:len(t.intermediate_values)]))
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert len(t.intermediate_values) == 8 and t.value == reported[t.number][-1]


def test_optuna_pruning_callback_needs_the_monitored_value():
    optuna = pytest.importorskip("optuna")
    trial = optuna.create_study().ask()
    net = fastnn.Network([2, 2], seed=0)
    with pytest.raises(ValueError, match="has no 'val_loss'"):
        net.fit(np.zeros((4, 2)), np.zeros((4, 2)), callbacks=[fastnn.search.OptunaPruningCallback(trial)])
