"""Threads. The C kernels release the GIL, so networks can train in parallel Python threads.

- Two threads training two different networks at once each get exactly the result they get alone (both backends).
- One network used from two threads at once must be either safe (the calls serialise: the result is one of the
  sequential orderings) or refused with a clear RuntimeError, never silently corrupted. Checked two ways: a
  deterministic interleaving (a second thread calls in while the first call is provably in progress) for every
  pair of fit/train_step/gradients/evaluate, and stress races in a child process (so that a crash is reported as
  a failure of the test instead of killing the test run). Without Network's lock (before commit aea1e39) both
  failed: the racing fits left finite parameters matching no sequential ordering, silently.
- Any number of threads may predict with one network at once.
"""
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fastnn

SIZES = [64, 256, 10]  # big enough that each kernel call spends real time outside the GIL
EPOCHS = 12


def _digits():
    X, y = fastnn.datasets.load_digits()
    return fastnn.datasets.train_test_split(X / 16.0, y, test_fraction=0.25, seed=0)


def _flat(net):
    return np.concatenate([a.ravel() for a in net.weights + net.biases])


def _run_concurrently(*calls, timeout=300):
    """Run each call in its own thread, all released at once; (results, errors, (start, end) per call)."""
    n = len(calls)
    barrier = threading.Barrier(n)
    results, errors, spans = [None] * n, [None] * n, [None] * n

    def worker(i, call):
        barrier.wait()
        start = time.perf_counter()
        try:
            results[i] = call()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors[i] = exc
        spans[i] = (start, time.perf_counter())

    threads = [threading.Thread(target=worker, args=(i, call), daemon=True) for i, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a thread did not finish (deadlock?)"
    return results, errors, spans


def _overlapped(spans):
    return max(s for s, _ in spans) < min(e for _, e in spans)


# --------------------------------------------------------------------------- two networks, two threads
JOBS = {
    "A": (dict(activations="relu", dtype="float32", seed=1),
          dict(epochs=EPOCHS, batch_size=32, optimizer="adam", learning_rate=1e-3)),
    "B": (dict(activations="tanh", dtype="float64", seed=2),
          dict(epochs=EPOCHS, batch_size=64, optimizer="sgd", learning_rate=0.05, momentum=0.9, nesterov=True)),
}


def _job(name, backend, X, y):
    net_kw, fit_kw = JOBS[name]
    net = fastnn.Network(SIZES, loss="cross_entropy", backend=backend, **net_kw)
    history = net.fit(X, y, **fit_kw)
    return _flat(net), np.array(history["loss"]), net.predict(X)


def test_two_networks_in_two_threads_match_training_alone(backend, digits):
    X_train, _, y_train, _ = digits
    alone = {name: _job(name, backend, X_train, y_train) for name in JOBS}
    for round_ in range(2):
        results, errors, spans = _run_concurrently(*(lambda n=name: _job(n, backend, X_train, y_train)
                                                     for name in JOBS))
        assert errors == [None, None], errors
        assert _overlapped(spans), f"the two fits did not run at the same time: {spans}"
        for name, result in zip(JOBS, results):
            for got, want in zip(result, alone[name]):
                assert np.array_equal(got, want), f"network {name} differs when trained next to another"


def test_two_threads_with_more_threads_than_cores_and_many_networks(backend, digits):
    """Four networks at once, each kernel asking for 2 OpenMP threads: still bit-identical."""
    X_train, _, y_train, _ = digits
    old = fastnn.get_num_threads()
    fastnn.set_num_threads(2)
    try:
        names = ["A", "B", "A", "B"]
        alone = {name: _job(name, backend, X_train[:600], y_train[:600]) for name in JOBS}
        results, errors, _ = _run_concurrently(*(lambda n=name: _job(n, backend, X_train[:600], y_train[:600])
                                                 for name in names))
    finally:
        fastnn.set_num_threads(old)
    assert errors == [None] * 4, errors
    for name, result in zip(names, results):
        for got, want in zip(result, alone[name]):
            assert np.array_equal(got, want)


# ----------------------------------------------------------------------------- one network, two threads
class ChildCrashed(Exception):
    """The child process died: a crash is never an acceptable outcome."""


def _in_child(scenario, backend):
    """Run `scenario` (a function of this file) in a fresh interpreter; its JSON result."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-X", "faulthandler", os.path.abspath(__file__), scenario, backend],
                          capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        raise ChildCrashed(f"{scenario} ({backend}) exited with status {proc.returncode}:\n"
                           f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _describe(exc):
    return None if exc is None else f"{type(exc).__name__}: {exc}"


def _shared_setup():
    X_train, X_test, y_train, y_test = _digits()
    fits = {
        "A": lambda net: net.fit(X_train[:700], y_train[:700], epochs=EPOCHS, batch_size=32, learning_rate=0.05),
        "B": lambda net: net.fit(X_train[700:], y_train[700:], epochs=EPOCHS, batch_size=16, optimizer="adam",
                                 learning_rate=1e-3),
    }
    return fits, (X_test, y_test)


def scenario_fit_fit(backend):
    """Two threads call fit on the same network at the same time."""
    fits, _ = _shared_setup()

    def make():
        return fastnn.Network(SIZES, loss="cross_entropy", seed=3, backend=backend)

    refs = {}
    for order in (("A",), ("B",), ("A", "B"), ("B", "A")):
        net = make()
        for name in order:
            fits[name](net)
        refs["+".join(order)] = _flat(net)
    net = make()
    _, errors, spans = _run_concurrently(lambda: fits["A"](net), lambda: fits["B"](net))
    params = _flat(net)
    return {"errors": [_describe(e) for e in errors], "overlapped": _overlapped(spans),
            "matches": [name for name, p in refs.items() if np.array_equal(p, params)],
            "finite": bool(np.isfinite(params).all())}


def scenario_fit_and(backend, reader):
    """One thread fits while another calls evaluate (or gradients) on the same network over and over."""
    fits, (X_test, y_test) = _shared_setup()

    def make():
        return fastnn.Network(SIZES, loss="cross_entropy", seed=3, backend=backend)

    ref = make()
    initial = _flat(ref)
    fits["A"](ref)
    ref = _flat(ref)
    net = make()
    done = threading.Event()
    calls = {"ok": 0, "refused": []}

    def fitter():
        try:
            return fits["A"](net)
        finally:
            done.set()

    def reading():
        while not done.is_set():
            try:
                getattr(net, reader)(X_test, y_test)
                calls["ok"] += 1
            except RuntimeError as exc:
                calls["refused"].append(str(exc))
                time.sleep(0.001)

    _, errors, spans = _run_concurrently(fitter, reading)
    params = _flat(net)
    return {"errors": [_describe(e) for e in errors], "overlapped": _overlapped(spans),
            "matches": [name for name, p in (("fit alone", ref), ("initial", initial)) if np.array_equal(p, params)],
            "reads": calls["ok"], "refusals": sorted(set(calls["refused"]))[:3]}


SCENARIOS = {"fit_fit": scenario_fit_fit,
             "fit_evaluate": lambda backend: scenario_fit_and(backend, "evaluate"),
             "fit_gradients": lambda backend: scenario_fit_and(backend, "gradients")}

def _clear_refusal(message):
    return message.startswith("RuntimeError") and "thread" in message


def test_one_network_fit_from_two_threads_is_safe_or_refused(backend):
    out = _in_child("fit_fit", backend)
    errors = out["errors"]
    refused = [i for i, e in enumerate(errors) if e is not None]
    if not refused:
        # both ran: acceptable only if they were serialised (a blocking lock): one of the sequential orderings
        assert "A+B" in out["matches"] or "B+A" in out["matches"], \
            f"both fits ran and the network matches no sequential ordering: corrupted ({out})"
    else:
        assert len(refused) == 1, f"both fits failed: {errors}"
        assert _clear_refusal(errors[refused[0]]), f"not a clear RuntimeError: {errors[refused[0]]}"
        other = "B" if refused[0] == 0 else "A"
        assert other in out["matches"], f"the refused fit changed the network ({out})"


@pytest.mark.parametrize("reader", ["evaluate", "gradients"])
def test_one_network_fit_while_another_thread_reads_is_safe_or_refused(backend, reader):
    out = _in_child(f"fit_{reader}", backend)
    fit_error, read_error = out["errors"]
    assert read_error is None, f"{reader} failed with something other than a RuntimeError: {read_error}"
    assert all("thread" in r for r in out["refusals"]), out["refusals"]
    if fit_error is None:
        assert "fit alone" in out["matches"], f"fit next to {reader} gave a different network: corrupted ({out})"
    else:
        assert _clear_refusal(fit_error), f"not a clear RuntimeError: {fit_error}"
        assert "initial" in out["matches"], f"the refused fit changed the network ({out})"


# ------------------------------------------------------------------- one network: deterministic interleaving
class _During:
    """An array-like whose conversion runs `hook` (once). A Network method converts its X first thing, so the
    hook runs while that method is in progress, holding whatever the method holds."""

    def __init__(self, array, hook):
        self.array, self.hook, self.fired = array, hook, False

    def __array__(self, dtype=None, copy=None):
        if not self.fired:
            self.fired = True
            self.hook()
        return self.array if dtype is None else self.array.astype(dtype)


CALLS = {  # name: (call, rows of X it takes)
    "fit": (lambda net, X, y: net.fit(X, y, epochs=2, batch_size=32, learning_rate=0.05), 200),
    "train_step": (lambda net, X, y: net.train_step(X, y, learning_rate=0.05), 32),
    "gradients": (lambda net, X, y: net.gradients(X, y), 200),
    "evaluate": (lambda net, X, y: net.evaluate(X, y), 200),
}


def _call(name, net, X, y, hook=None):
    call, rows = CALLS[name]
    X, y = X[:rows], y[:rows]
    return call(net, X if hook is None else _During(X, hook), y)


@pytest.mark.parametrize("holder", list(CALLS))
@pytest.mark.parametrize("intruder", list(CALLS))
def test_a_second_thread_is_refused_or_waits_while_a_call_is_in_progress(backend, digits, holder, intruder):
    """While `holder` runs on a network, another thread calls `intruder` on it: the intruder must get a clear
    RuntimeError (or wait for the holder to finish), never run alongside it; the holder is unaffected."""
    X_train, _, y_train, _ = digits
    X, y = X_train[:200], y_train[:200]

    def make():
        return fastnn.Network([64, 32, 10], loss="cross_entropy", seed=4, backend=backend)

    alone = make()
    _call(holder, alone, X, y)
    seen = {}

    def intrude():
        try:
            _call(intruder, net, X, y)
            seen["intruder"] = "ran"
        except RuntimeError as exc:
            seen["intruder"] = f"RuntimeError: {exc}"

    def hook():
        seen["thread"] = threading.Thread(target=intrude, daemon=True)
        seen["thread"].start()
        seen["thread"].join(2.0)
        seen["waited"] = seen["thread"].is_alive()  # blocked on a lock: the calls serialise

    net = make()
    _call(holder, net, X, y, hook)
    seen["thread"].join(60)
    if seen["waited"]:  # serialised: fine, the intruder ran after the holder
        assert seen["intruder"] == "ran"
        return
    assert seen["intruder"] != "ran", f"{intruder} ran in another thread while {holder} was in progress"
    assert _clear_refusal(seen["intruder"]), seen["intruder"]
    np.testing.assert_array_equal(_flat(net), _flat(alone))  # the refusal left the holder's work intact


def test_many_threads_predict_with_one_network_at_once(backend, digits):
    """predict takes no lock: it writes only to its own outputs, so any number of threads may use it at once."""
    X_train, X_test, y_train, _ = digits
    net = fastnn.Network(SIZES, loss="cross_entropy", seed=5, backend=backend)
    net.fit(X_train, y_train, epochs=1)
    batch_ref, single_ref = net.predict(X_test), [net.predict(x) for x in X_test[:20]]

    def work():
        for _ in range(20):
            assert np.array_equal(net.predict(X_test), batch_ref)
            for x, ref in zip(X_test[:20], single_ref):
                assert np.array_equal(net.predict(x), ref)
        return True

    results, errors, spans = _run_concurrently(*([work] * 4))
    assert errors == [None] * 4, errors
    assert results == [True] * 4


if __name__ == "__main__":  # the child process of _in_child
    scenario, backend_name = sys.argv[1], sys.argv[2]
    print(json.dumps(SCENARIOS[scenario](backend_name)))
