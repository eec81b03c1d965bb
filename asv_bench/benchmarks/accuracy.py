"""Numeric regressions: the loss and accuracy a fixed, seeded training run reaches on the UCI digits shipped
with fastnn. Both backends run the same computation, so both numbers should stay put (to float rounding) from
commit to commit; a jump means a change of arithmetic, initialisation or shuffling, not of speed."""
import fastnn

from .common import BACKENDS, DTYPES, require_backend, setup, use_threads  # noqa: F401

EPOCHS = 5
SIZES = [64, 32, 10]


class DigitsTraining:
    """[64, 32, 10] ReLU / softmax + cross-entropy, Adam lr 1e-3, batch 32, 5 epochs, seed 0, on 75% of the
    digits (seeded split), evaluated on the other 25%."""

    params = [BACKENDS, DTYPES]
    param_names = ["backend", "dtype"]
    timeout = 120

    def setup(self, backend, dtype):
        require_backend(backend)
        use_threads(backend, 1)
        X, y = fastnn.datasets.load_digits()
        X_train, X_test, y_train, y_test = fastnn.datasets.train_test_split(X / 16.0, y, seed=0)
        net = fastnn.Network(SIZES, activations="relu", loss="cross_entropy", dtype=dtype, seed=0,
                             backend=backend)
        history = net.fit(X_train, y_train, epochs=EPOCHS, batch_size=32, optimizer="adam", learning_rate=1e-3)
        self.train_loss = float(history["loss"][-1])
        self.test_loss = float(net.evaluate(X_test, y_test))
        self.test_accuracy = 100.0 * float((net.predict(X_test).argmax(axis=1) == y_test).mean())

    def track_loss_after_k_epochs(self, backend, dtype):
        return self.train_loss

    track_loss_after_k_epochs.unit = "loss"

    def track_test_loss(self, backend, dtype):
        return self.test_loss

    track_test_loss.unit = "loss"

    def track_test_accuracy(self, backend, dtype):
        return self.test_accuracy

    track_test_accuracy.unit = "%"
