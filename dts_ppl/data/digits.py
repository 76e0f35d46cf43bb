"""scikit-learn's digits as a multi-task bandit source (the only module that imports scikit-learn).

Kveton et al. (2024)'s MNIST study, on the 8x8 digits that ship inside scikit-learn (no download):

- **Embedding.** Images (1797, 64) are projected on their first ``dim - 1`` principal
  components (fitted on all images, scaled to unit variance) and a constant 1 is appended, so a
  linear model on the features has an intercept: features (1797, dim).
- **Task parameters.** A task is a class c. One theta sample is a linear model of the label
  1{class = c} fitted on a small random subset of images (``positives`` of class c and
  ``negatives`` of other classes): ridge regression ("linear") or ridge-penalised logistic
  regression by Newton's method ("logistic"). Many subsets per class give the multi-modal
  sample of theta a prior is pre-trained on.
- **Split.** Images are split at random into a pre-training half and a bandit half: the
  pre-training thetas are fitted on the first, the bandit's true thetas and its action images on
  the second, so no image the prior saw is an action.

scikit-learn is an optional extra (``pip install dts_ppl[datasets]``): without it this module
imports, and :func:`load_digit_images` raises a ValueError saying how to install it. (It is
imported by name at the first load, not by an import statement at the top: the presets module
imports this one, and the CLI must run without scikit-learn.)
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import NamedTuple

import numpy as np

#: scikit-learn is optional: looked up here, imported (by name) only when the digits are loaded, so
#: neither ``import dts_ppl`` nor the presets need it.
HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None


class DigitsTasks(NamedTuple):
    """Theta samples and action features of the digits multi-task bandit.

    Attributes:
        pretrain_thetas: (N_pre, dim) thetas fitted on the pre-training images.
        pretrain_classes: (N_pre,) their class.
        bandit_thetas: (N_bandit, dim) thetas fitted on the bandit images (one drawn per run).
        bandit_classes: (N_bandit,) their class.
        features: (M, dim) embedded bandit images (the action pool).
        labels: (M,) their digit.
        kind: "linear" or "logistic".
    """

    pretrain_thetas: np.ndarray
    pretrain_classes: np.ndarray
    bandit_thetas: np.ndarray
    bandit_classes: np.ndarray
    features: np.ndarray
    labels: np.ndarray
    kind: str


def load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: images (1797, 64) in [0, 16] and labels (1797,)."""
    if not HAVE_SKLEARN:
        raise ValueError("dataset: the digits data need scikit-learn; install it with `pip install dts_ppl[datasets]`")
    data = importlib.import_module("sklearn.datasets").load_digits()
    return np.asarray(data.data, np.float64), np.asarray(data.target, np.int64)


def embed(images, dim: int) -> np.ndarray:
    """Features (M, dim): the first dim - 1 unit-variance principal components of ``images`` (M, p), and 1."""
    images = np.asarray(images, np.float64)
    if images.ndim != 2:
        raise ValueError(f"images: expected an (M, p) array, got shape {images.shape}")
    if int(dim) != dim or not 2 <= dim <= min(images.shape) + 1:
        raise ValueError(f"dim: expected an integer in [2, {min(images.shape) + 1}], got {dim!r}")
    centred = images - images.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = int(dim) - 1
    scores = centred @ vt[:k].T / (s[:k] / np.sqrt(images.shape[0] - 1))
    return np.concatenate([scores, np.ones((images.shape[0], 1))], axis=1)


def fit_linear_models(X, y, ridge: float, kind: str, newton_steps: int = 25) -> np.ndarray:
    """Ridge ("linear") or ridge-logistic ("logistic") fits of many small data sets at once.

    Args:
        X: (S, m, d) features of S data sets.   y: (S, m) labels in {0, 1}.
        ridge: L2 penalty (> 0).   kind: "linear" or "logistic".
    Returns:
        (S, d) fitted parameters.
    """
    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
    if X.ndim != 3 or y.shape != X.shape[:2]:
        raise ValueError(f"X, y: expected shapes (S, m, d) and (S, m), got {X.shape} and {y.shape}")
    if not ridge > 0:
        raise ValueError(f"ridge: expected a positive penalty, got {ridge!r}")
    eye = ridge * np.eye(X.shape[2])
    if kind == "linear":
        return np.linalg.solve(X.transpose(0, 2, 1) @ X + eye, np.einsum("smd,sm->sd", X, y)[..., None])[..., 0]
    if kind != "logistic":
        raise ValueError(f"kind: expected 'linear' or 'logistic', got {kind!r}")
    theta = np.zeros(X.shape[::2])
    for _ in range(int(newton_steps)):  # the penalised objective is strictly convex: plain Newton converges
        p = 1.0 / (1.0 + np.exp(-np.einsum("smd,sd->sm", X, theta)))
        grad = np.einsum("smd,sm->sd", X, p - y) + ridge * theta
        hess = np.einsum("smd,sm,sme->sde", X, p * (1 - p), X) + eye
        theta = theta - np.linalg.solve(hess, grad[..., None])[..., 0]
    return theta


def _task_thetas(rng, features, labels, per_class, positives, negatives, ridge, kind):
    X, y, cls = [], [], []
    for c in range(10):
        pos, neg = np.flatnonzero(labels == c), np.flatnonzero(labels != c)
        for _ in range(per_class):
            idx = np.concatenate([rng.choice(pos, positives, replace=False), rng.choice(neg, negatives, replace=False)])
            X.append(features[idx])
            y.append((labels[idx] == c).astype(np.float64))
            cls.append(c)
    return fit_linear_models(np.stack(X), np.stack(y), ridge, kind), np.asarray(cls)


def digits_tasks(
    dim: int = 5,
    kind: str = "linear",
    pretrain_per_class: int = 200,
    bandit_per_class: int = 50,
    positives: int = 10,
    negatives: int = 20,
    ridge: float = 1.0,
    seed: int = 0,
) -> DigitsTasks:
    """Theta samples of the digits multi-task bandit (see the module docstring).

    Args:
        dim: feature dimension d (d - 1 principal components and an intercept).
        kind: "linear" (ridge regression of the class indicator) or "logistic".
        pretrain_per_class: subsets per class fitted on the pre-training images.
        bandit_per_class: subsets per class fitted on the bandit images (the true thetas).
        positives, negatives: images of the class and of other classes in each subset.
        ridge: L2 penalty of every fit.   seed: of the image split and the subsets.
    Returns:
        DigitsTasks.
    """
    if kind not in ("linear", "logistic"):
        raise ValueError(f"kind: expected 'linear' or 'logistic', got {kind!r}")
    for name, v in (("pretrain_per_class", pretrain_per_class), ("bandit_per_class", bandit_per_class)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name}: expected a positive integer, got {v!r}")
    images, labels = load_digit_images()
    features = embed(images, dim)
    rng = np.random.RandomState(int(seed))
    half = rng.permutation(images.shape[0])
    pre, ban = half[: len(half) // 2], half[len(half) // 2 :]
    for name, v, limit in (("positives", positives, 80), ("negatives", negatives, 700)):
        if int(v) != v or not 1 <= v <= limit:
            raise ValueError(f"{name}: expected an integer in [1, {limit}] (images per subset), got {v!r}")
    args = (int(positives), int(negatives), float(ridge), kind)
    th_pre, c_pre = _task_thetas(rng, features[pre], labels[pre], int(pretrain_per_class), *args)
    th_ban, c_ban = _task_thetas(rng, features[ban], labels[ban], int(bandit_per_class), *args)
    return DigitsTasks(th_pre, c_pre, th_ban, c_ban, features[ban], labels[ban], kind)
