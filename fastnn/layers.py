"""Layer types. A layer owns no memory: Network points its parameters and gradients into flat buffers.

The interface a layer type implements (Dense is the first; convolutional and recurrent layers come next):
  - `param_shapes()`: shapes of its decayed parameters (weights) and of its undecayed ones (biases);
  - `bind(weights, biases, grad_weights, grad_biases)`: views into the network's flat buffers;
  - `forward(kernels, x, out, train, n_threads)`: a forward pass over a batch (used by evaluate);
  - `config()`: what a model file stores.
Training, gradients and one-sample prediction run through the whole-network kernels (csrc/network.c), which read
each layer's buffers and activation codes; a new layer type needs its own entry there.
"""
from . import _codes


class Dense:
    """Fully connected layer: out = activation(x @ W + b), W of shape (d_in, d_out)."""

    kind = "dense"

    def __init__(self, d_in, d_out, activation="linear", fused_output=False):
        self.d_in, self.d_out = d_in, d_out
        self.activation = activation
        self.act_code = _codes.ACTIVATIONS[activation]
        self.alpha = _codes.LEAKY_RELU_SLOPE
        # The output layer of a fused loss keeps logits while training; the loss applies softmax/sigmoid.
        self.fused_output = fused_output
        self.W = self.b = self.dW = self.db = None

    def param_shapes(self):
        return [(self.d_in, self.d_out)], [(self.d_out,)]

    def bind(self, weights, biases, grad_weights, grad_biases):
        (self.W,), (self.b,), (self.dW,), (self.db,) = weights, biases, grad_weights, grad_biases

    def train_act_code(self):
        """The activation applied in a training forward pass (linear for a fused output layer)."""
        return _codes.LINEAR if self.fused_output else self.act_code

    def forward(self, kernels, x, out, train, n_threads):
        act = self.train_act_code() if train else self.act_code
        kernels.dense_forward(out, x, self.W, self.b, act, self.alpha, n_threads)

    def config(self):
        return {"type": self.kind, "d_in": self.d_in, "d_out": self.d_out, "activation": self.activation}

    def __repr__(self):
        return f"Dense({self.d_in}, {self.d_out}, activation={self.activation!r})"


LAYER_TYPES = {Dense.kind: Dense}
