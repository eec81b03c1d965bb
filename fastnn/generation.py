"""Sampling from sequence models: the next token from a predicted distribution, and text generation with a
stateful network one token at a time (each new token costs one step of the recurrent layers, not a re-run of
the prefix)."""
import numpy as np

from . import _validation as check


def sample(probabilities, temperature=1.0, rng=None):
    """An index drawn from `probabilities` (a 1-D distribution, e.g. one step of a softmax output) sharpened or
    flattened by `temperature`: p_i^(1/T), renormalised, which is softmax(logits / T). temperature -> 0 tends
    to the argmax (taken exactly at 0); 1 samples the distribution as it is."""
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if p.size == 0 or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError("probabilities must be a non-empty vector of non-negative finite numbers with a "
                         "positive sum")
    temperature = check.check_float("temperature", temperature, 0.0)
    if temperature == 0:
        return int(np.argmax(p))
    rng = np.random.default_rng(rng)
    with np.errstate(divide="ignore"):
        logits = np.log(p) / temperature
    logits -= logits.max()
    weights = np.exp(logits)
    return int(rng.choice(p.size, p=weights / weights.sum()))


def generate(net, prompt, length, temperature=1.0, rng=None):
    """`length` token ids continuing `prompt` (a non-empty 1-D sequence of token ids) from a stateful network
    whose output is a distribution over the next token at every step (Embedding -> stateful recurrent layers
    with return_sequences -> Dense). The network's states are reset first and left after the last token."""
    if not net._stateful_layers():
        raise ValueError("generate needs a network with stateful recurrent layers (stateful=True), so that each "
                         "new token costs one step")
    prompt = np.asarray(prompt)
    if prompt.ndim != 1 or prompt.size == 0:
        raise ValueError("prompt must be a non-empty 1-D sequence of token ids")
    length = check.check_int("length", length, 0)
    rng = np.random.default_rng(rng)
    net.reset_states()
    probabilities = net.predict(prompt[None, :])[0, -1]  # the prompt in one call; its last step predicts
    out = []
    for _ in range(length):
        token = sample(probabilities, temperature, rng)
        out.append(token)
        probabilities = net.predict(np.array([[token]]))[0, -1]
    return np.array(out, dtype=np.int64)
