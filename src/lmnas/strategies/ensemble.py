"""An ensemble of small MLP regressors in plain numpy, all members trained at once (BANANAS' predictor).

The members share the data and differ in their initial weights; the spread of their predictions is
the uncertainty an acquisition function uses. Weights are stacked on a leading member axis, so one
batched matmul runs every member: shapes below are E = members, n = rows, d = features, h = width.
Full-batch Adam on the mean squared error of standardised targets; no wall time, no global state:
the same data and generator give the same weights bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import ThreadpoolController


_controller: ThreadpoolController | None = None


def one_blas_thread():  # noqa: ANN201 (threadpoolctl's context manager)
    """A context with one BLAS thread; the controller is made once (it scans the loaded libraries)."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


@dataclass(frozen=True)
class EnsembleSettings:
    members: int = 5
    hidden: tuple[int, ...] = (32, 32)
    epochs: int = 150
    lr: float = 0.01
    weight_decay: float = 0.0


class MLPEnsemble:
    def __init__(self, settings: EnsembleSettings) -> None:
        self.settings = settings
        self.weights: list[np.ndarray] = []  # per layer: (E, fan_in, fan_out)
        self.biases: list[np.ndarray] = []   # per layer: (E, 1, fan_out)
        self.y_mean, self.y_std = 0.0, 1.0

    def fit(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> MLPEnsemble:
        """x: (n, d) float32 features, y: (n,) targets. One BLAS thread: these matrices are tiny, and
        threads fighting over them made a fit 10-50x slower on a busy 2-core machine."""
        with one_blas_thread():
            return self._fit(x, y, rng)

    def _fit(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> MLPEnsemble:
        s = self.settings
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float64)
        self.y_mean = float(y.mean())
        self.y_std = float(y.std()) or 1.0
        target = ((y - self.y_mean) / self.y_std).astype(np.float32)[None, :, None]  # (1, n, 1)
        sizes = [x.shape[1], *s.hidden, 1]
        shapes = [(s.members, a, b) for a, b in zip(sizes, sizes[1:])] + [(s.members, 1, b) for b in sizes[1:]]
        # All weights and biases are views of one flat buffer (and so are their gradients): one Adam
        # update per step instead of one per tensor (the per-call overhead dominates at these sizes).
        flat = np.zeros(sum(int(np.prod(shape)) for shape in shapes), dtype=np.float32)
        grad_flat = np.zeros_like(flat)
        params, grads, offset = [], [], 0
        for shape in shapes:
            size = int(np.prod(shape))
            params.append(flat[offset:offset + size].reshape(shape))
            grads.append(grad_flat[offset:offset + size].reshape(shape))
            offset += size
        layers = len(sizes) - 1
        self.weights, self.biases = params[:layers], params[layers:]
        for w, (a, _) in zip(self.weights, zip(sizes, sizes[1:])):
            w[...] = rng.standard_normal(w.shape) * np.sqrt(2.0 / a)  # He initialisation (ReLU)
        decay = np.zeros_like(flat)
        decay[: sum(int(np.prod(shape)) for shape in shapes[:layers])] = s.weight_decay  # weights only
        m, v = np.zeros_like(flat), np.zeros_like(flat)
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        n = x.shape[0]
        for step in range(1, s.epochs + 1):
            activations = self._forward(x)
            grad = (2.0 / n) * (activations[-1] - target)  # d loss / d output, (E, n, 1)
            for layer in range(layers - 1, -1, -1):
                np.matmul(np.swapaxes(activations[layer], -1, -2), grad, out=grads[layer])  # (d, n) @ (E, n, h)
                grads[layers + layer][...] = grad.sum(axis=1, keepdims=True)
                if layer:
                    grad = (grad @ np.swapaxes(self.weights[layer], 1, 2)) * (activations[layer] > 0)
            g = grad_flat + decay * flat if s.weight_decay else grad_flat
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            step_size = np.float32(s.lr * np.sqrt(1 - beta2**step) / (1 - beta1**step))
            flat -= step_size * m / (np.sqrt(v) + np.float32(eps))
        return self

    def _forward(self, x: np.ndarray) -> list[np.ndarray]:
        """Activations of every layer: [x (n, d), (E, n, h1), ..., output (E, n, 1)]."""
        out = [x]
        h: np.ndarray = x
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w + b  # (n, d) @ (E, d, h) broadcasts to (E, n, h)
            if layer < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
            out.append(h)
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(E, n) predictions in the targets' units."""
        with one_blas_thread():
            return self._forward(np.asarray(x, dtype=np.float32))[-1][..., 0] * self.y_std + self.y_mean
