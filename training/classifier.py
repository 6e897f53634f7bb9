"""The per-model classifier: shrinkage LDA on stored features, calibrated, open set.

Fitting (:func:`fit`) does, on the features of a model's examples:

1. **Shrinkage LDA.** Class means ``M`` and the pooled within-class covariance ``S``;
   ``Sigma_s = (1 - s) S + s (tr S / d) I``; logits ``x Sigma_s^-1 m_k - m_k Sigma_s^-1 m_k / 2``
   (scikit-learn's ``LinearDiscriminantAnalysis(solver="lsqr", shrinkage=s)`` with equal
   priors). The within-class covariance is eigendecomposed once (a thin SVD when there
   are fewer examples than dimensions), so each shrinkage value of the grid and each
   fold is a diagonal rescale: a 50 x 50 model with its cross-validation trains in
   seconds.
2. **Shrinkage by cross-validation**: stratified k-fold over the examples, the ``s`` with
   the best out-of-fold accuracy (ties: the larger ``s``).
3. **Calibration among the tags**: one temperature ``T`` on the logits, by out-of-fold
   log-loss; its expected calibration error is measured cross-fitted (``T`` fitted
   without the fold it is scored on).
4. **Open set.** A softmax over the model's tags is confident even for a photo that fits
   none of them, so the confidence a smart tag carries is the probability that the tag
   is right, from a logistic model on two signals: the tag's calibrated softmax
   probability and the photo's cosine similarity to the tag's examples (their mean).
   It is fitted on out-of-fold predictions, where every example also stands in for a
   photo of an unknown kind (its own tag removed: whatever the model then says about it
   is wrong). Per-tag thresholds are the lowest confidence at which the out-of-fold
   predictions reach the target precision; a tag applies only at or above its threshold.

Tagging an image is two ``d x K`` products and a softmax: no extra forward pass.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from .errors import FitError

#: Shrinkage values tried by cross-validation.
SHRINKAGE_GRID = (0.5, 0.7, 0.8, 0.9, 0.95)
FOLDS = 5
NEVER = 1.0  # threshold of a tag that never reaches its target precision


@dataclass(frozen=True)
class Prediction:
    """Per image: best tag index, its confidence, whether it clears the tag's threshold,
    and the two signals behind the confidence."""

    tag: np.ndarray
    confidence: np.ndarray
    applied: np.ndarray
    probability: np.ndarray  # calibrated softmax probability among the model's tags
    similarity: np.ndarray  # cosine to the tag's examples' mean


@dataclass(frozen=True)
class LinearClassifier:
    """A trained tag model version: LDA weights, temperature, the tags' mean directions,
    the open-set confidence model and per-tag thresholds; tags in ``tags`` order."""

    tags: tuple[str, ...]
    weights: np.ndarray  # d x K, float32
    bias: np.ndarray  # K
    temperature: float
    centroids: np.ndarray  # d x K, unit mean direction of each tag's examples
    accept: np.ndarray  # 3: confidence = sigmoid(a log p + b cos + c)
    thresholds: np.ndarray  # K

    def proba(self, x: np.ndarray) -> np.ndarray:
        """Calibrated probabilities among the model's tags (closed set)."""
        z = np.asarray(x, np.float32) @ self.weights + self.bias
        return softmax(z / self.temperature)

    def predict(self, x: np.ndarray) -> Prediction:
        x = np.asarray(x, np.float32)
        p = self.proba(x)
        best = p.argmax(axis=1)
        top = p[np.arange(len(p)), best]
        norm = np.maximum(np.sqrt(np.einsum("ij,ij->i", x, x)), 1e-12)
        rows = np.arange(len(x))
        sim = (x @ self.centroids)[rows, best] / norm
        conf = accept_confidence(self.accept, top, sim)
        return Prediction(best, conf, conf >= self.thresholds[best], top, sim)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(
            buf,
            tags=np.array(self.tags, dtype=str),
            weights=self.weights,
            bias=self.bias,
            temperature=np.array(self.temperature),
            centroids=self.centroids,
            accept=self.accept,
            thresholds=self.thresholds,
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> LinearClassifier:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return cls(
                tags=tuple(str(t) for t in z["tags"]),
                weights=z["weights"].astype(np.float32),
                bias=z["bias"].astype(np.float32),
                temperature=float(z["temperature"]),
                centroids=z["centroids"].astype(np.float32),
                accept=z["accept"].astype(np.float64),
                thresholds=z["thresholds"].astype(np.float64),
            )


@dataclass(frozen=True)
class CrossValidation:
    """What cross-validation measured; arrays are per training example."""

    shrinkage: float
    accuracy: float  # out-of-fold top-1, at the chosen shrinkage
    grid_accuracy: dict[float, float]
    oof_proba: np.ndarray  # n x K, calibrated with the final temperature
    predicted: np.ndarray  # top tag
    confidence: np.ndarray  # its open-set confidence
    unknown_predicted: np.ndarray  # top tag with the example's own tag removed
    unknown_confidence: np.ndarray
    folds: np.ndarray
    ece: float  # confidence users see, cross-fitted, over in-model + stand-in unknowns
    ece_closed: float  # softmax among the tags after temperature, cross-fitted
    ece_uncalibrated: float  # softmax among the tags before temperature


@dataclass(frozen=True)
class Fit:
    classifier: LinearClassifier
    cv: CrossValidation


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


@dataclass(frozen=True)
class _Scatter:
    """Eigendecomposition ``V diag(lam) V^T`` of a within-class covariance (zero outside
    the span of ``V``), and ``mu = trace / d``."""

    lam: np.ndarray
    v: np.ndarray
    mu: float

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray, means: np.ndarray) -> _Scatter:
        n, d = x.shape
        xc = (x - means[y]) / np.sqrt(n)
        if n < d:  # thin: the examples span at most n directions
            _, sv, vt = np.linalg.svd(xc, full_matrices=False)
            lam, v = sv**2, vt.T
        else:
            lam, v = np.linalg.eigh(xc.T @ xc)
            lam = np.maximum(lam, 0.0)
        return cls(lam, v, float(lam.sum() / d) or 1.0)


def _class_means(x: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    counts = np.bincount(y, minlength=k).astype(np.float64)
    present = counts > 0
    means = np.zeros((k, x.shape[1]))
    np.add.at(means, y, x)
    means[present] /= counts[present, None]
    return means, present


class _Lda:
    """Class means of a training set over a within-class covariance; :meth:`solve`
    gives the discriminant for any shrinkage as a diagonal rescale of the eigenbasis."""

    def __init__(
        self, x: np.ndarray, y: np.ndarray, k: int, scatter: _Scatter | None = None
    ) -> None:
        x = x.astype(np.float64)
        self.means, self.present = _class_means(x, y, k)
        self.scatter = scatter or _Scatter.of(x, y, self.means)
        self.mv = self.means @ self.scatter.v
        # Equal priors: a tag's share of the examples says nothing about the library.
        self.log_prior = np.where(self.present, 0.0, -np.inf)

    def solve(self, s: float) -> tuple[np.ndarray, np.ndarray]:
        """(W d x K, b K) for shrinkage ``s`` in (0, 1]."""
        sc = self.scatter
        inv_rest = 1.0 / (s * sc.mu)
        dd = 1.0 / ((1.0 - s) * sc.lam + s * sc.mu) - inv_rest
        w = inv_rest * self.means.T + sc.v @ (dd[:, None] * self.mv.T)
        b = -0.5 * (self.means * w.T).sum(axis=1) + self.log_prior
        w[:, ~self.present] = 0.0
        return w, b


def stratified_folds(y: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Fold of each example: every tag's examples dealt round-robin after a shuffle."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(y), dtype=np.int64)
    offset = 0
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        folds[idx] = (np.arange(len(idx)) + offset) % k
        offset += len(idx)  # spread small tags over different folds
    return folds


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the log-loss (golden section on log T)."""
    ok = np.isfinite(logits[np.arange(len(y)), y])
    logits, y = logits[ok], y[ok]
    if len(y) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        z = logits / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        return float((lse - z[np.arange(len(y)), y]).mean())

    lo, hi = -6.0, 6.0
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return float(np.exp((lo + hi) / 2))


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 15
) -> float:
    """ECE: the share-weighted gap between confidence and accuracy over equal-width bins."""
    if len(confidence) == 0:
        return 0.0
    edges = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    ece = 0.0
    for b in range(bins):
        m = edges == b
        if m.any():
            ece += m.mean() * abs(float(correct[m].mean()) - float(confidence[m].mean()))
    return float(ece)


def _top_label_ece(proba: np.ndarray, y: np.ndarray) -> float:
    return expected_calibration_error(proba.max(axis=1), proba.argmax(axis=1) == y)


def threshold_for_precision(
    conf: np.ndarray, correct: np.ndarray, target: float, weights: np.ndarray | None = None
) -> float:
    """Lowest confidence at which the predictions at or above it reach ``target``
    precision; :data:`NEVER` when no cut-off does."""
    if len(conf) == 0:
        return NEVER
    w = np.ones(len(conf)) if weights is None else weights
    order = np.argsort(-conf, kind="stable")
    conf, correct, w = conf[order], correct[order], w[order]
    tp = np.cumsum(np.where(correct, w, 0.0))
    total = np.cumsum(w)
    # Only cut between distinct confidences: a threshold keeps every tie.
    last = np.r_[conf[1:] != conf[:-1], True]
    good = (tp / total >= target) & last & correct
    if not good.any():
        return NEVER
    return float(conf[np.flatnonzero(good)[-1]])


def accept_confidence(coef: np.ndarray, prob: np.ndarray, sim: np.ndarray) -> np.ndarray:
    z = coef[0] * np.log(np.maximum(prob, 1e-12)) + coef[1] * sim + coef[2]
    out: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
    return out


def fit_acceptance(
    prob: np.ndarray, sim: np.ndarray, correct: np.ndarray, weight: np.ndarray, l2: float = 1e-4
) -> np.ndarray:
    """Weighted logistic regression of "the tag is right" on (log p, cos), by Newton's
    method with a small ridge (separable data stays finite)."""
    a = np.column_stack([np.log(np.maximum(prob, 1e-12)), sim, np.ones(len(prob))])
    t = correct.astype(np.float64)
    w = weight / max(float(weight.sum()), 1e-12)
    coef = np.zeros(3)
    ridge = l2 * np.diag([1.0, 1.0, 0.0])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ coef, -50, 50)))
        grad = a.T @ (w * (p - t)) + ridge @ coef
        hess = (a * (w * p * (1 - p))[:, None]).T @ a + ridge + 1e-9 * np.eye(3)
        step = np.linalg.solve(hess, grad)
        coef -= step
        if np.abs(step).max() < 1e-8:
            break
    return coef


@dataclass(frozen=True)
class _Candidates:
    """Out-of-fold predictions, in-model then stand-in unknowns, as the confidence model
    and the thresholds see them."""

    tag: np.ndarray
    prob: np.ndarray
    sim: np.ndarray
    correct: np.ndarray
    weight: np.ndarray
    fold: np.ndarray


def _candidates(
    proba: np.ndarray,
    unknown: np.ndarray,
    sims: np.ndarray,
    y: np.ndarray,
    fold: np.ndarray,
    unknown_weight: float,
) -> _Candidates:
    n = len(y)
    rows = np.arange(n)
    best, u_best = proba.argmax(axis=1), unknown.argmax(axis=1)
    has_u = unknown.sum(axis=1) > 0
    return _Candidates(
        tag=np.r_[best, u_best[has_u]],
        prob=np.r_[proba[rows, best], unknown[rows, u_best][has_u]],
        sim=np.r_[sims[rows, best], sims[rows, u_best][has_u]],
        correct=np.r_[best == y, np.zeros(int(has_u.sum()), bool)],
        weight=np.r_[np.ones(n), np.full(int(has_u.sum()), unknown_weight)],
        fold=np.r_[fold, fold[has_u]],
    )


def fit(
    x: np.ndarray,
    y: np.ndarray,
    tags: tuple[str, ...],
    *,
    target_precision: float = 0.9,
    grid: tuple[float, ...] = SHRINKAGE_GRID,
    folds: int = FOLDS,
    unknown_weight: float = 1.0,
    seed: int = 0,
) -> Fit:
    """Fit, cross-validate, calibrate and threshold a classifier on examples ``x``, ``y``."""
    k = len(tags)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise FitError(f"need an n x d feature matrix with one label each, got {x.shape}")
    if not np.isfinite(x).all():
        bad = sorted({int(i) for i in np.argwhere(~np.isfinite(x))[:, 0]})
        raise FitError(f"features of examples {bad[:10]} are not finite (NaN or infinity)")
    if k < 2 or y.min() < 0 or y.max() >= k:
        raise FitError(f"labels must index {k} tags (at least 2)")
    nfold = int(max(2, min(folds, np.bincount(y, minlength=k).max())))
    fold = stratified_folds(y, nfold, seed)
    oof = {s: np.full((len(y), k), -np.inf) for s in grid}
    sims = np.zeros((len(y), k))
    unit = _unit(x)
    x64 = x.astype(np.float64)
    # With more examples than dimensions, the folds share one eigendecomposition of the
    # within-class covariance of all examples (each fold keeps its own class means; one
    # example moves that covariance by 1/n). Fewer examples: a thin SVD per fold.
    shared = _Scatter.of(x64, y, _class_means(x64, y, k)[0]) if len(x) >= x.shape[1] else None
    for f in range(nfold):
        train, test = fold != f, fold == f
        if not test.any() or len(np.unique(y[train])) < 2:
            continue
        lda = _Lda(x64[train], y[train], k, shared)
        sims[test] = unit[test] @ _unit(lda.means).T
        for s in grid:
            w, b = lda.solve(s)
            oof[s][test] = x[test] @ w + b
    acc = {s: float((oof[s].argmax(axis=1) == y).mean()) for s in grid}
    shrinkage = max(grid, key=lambda s: (acc[s], s))
    logits = oof[shrinkage]
    logits[~np.isfinite(logits).any(axis=1)] = 0.0  # a fold that could not be trained
    temperature = fit_temperature(logits, y)
    proba = softmax(logits / temperature)
    unknown = _unknown_proba(logits, y, temperature)
    cand = _candidates(proba, unknown, sims, y, fold, unknown_weight)
    accept = fit_acceptance(cand.prob, cand.sim, cand.correct, cand.weight)
    conf = accept_confidence(accept, cand.prob, cand.sim)
    thresholds = np.array(
        [
            threshold_for_precision(
                conf[cand.tag == t], cand.correct[cand.tag == t], target_precision,
                cand.weight[cand.tag == t],
            )
            for t in range(k)
        ]
    )  # fmt: skip
    lda = _Lda(x64, y, k, shared)
    w, b = lda.solve(shrinkage)
    classifier = LinearClassifier(
        tags=tags,
        weights=w.astype(np.float32),
        bias=np.nan_to_num(b, neginf=-1e30).astype(np.float32),
        temperature=temperature,
        centroids=_unit(lda.means).T.astype(np.float32),
        accept=accept,
        thresholds=thresholds,
    )
    n = len(y)
    cv = CrossValidation(
        shrinkage=shrinkage,
        accuracy=acc[shrinkage],
        grid_accuracy=acc,
        oof_proba=proba,
        predicted=cand.tag[:n],
        confidence=conf[:n],
        unknown_predicted=cand.tag[n:],
        unknown_confidence=conf[n:],
        folds=fold,
        ece=_cross_fitted_open_ece(cand, nfold),
        ece_closed=_cross_fitted_ece(logits, y, fold, nfold),
        ece_uncalibrated=_top_label_ece(softmax(logits), y),
    )
    return Fit(classifier, cv)


def _unit(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return out


def _unknown_proba(oof_logits: np.ndarray, y: np.ndarray, temperature: float) -> np.ndarray:
    z = oof_logits.copy()
    z[np.arange(len(y)), y] = -np.inf  # as if the example's own tag were not in the model
    finite = np.isfinite(z).any(axis=1)
    out = np.zeros_like(z)
    out[finite] = softmax(z[finite] / temperature)
    return out


def _cross_fitted_ece(logits: np.ndarray, y: np.ndarray, fold: np.ndarray, nfold: int) -> float:
    proba = np.zeros_like(logits)
    for f in range(nfold):
        test = fold == f
        if test.any():
            t = fit_temperature(logits[~test], y[~test])
            proba[test] = softmax(logits[test] / t)
    ok = np.isfinite(logits[np.arange(len(y)), y])
    return _top_label_ece(proba[ok], y[ok])


def _cross_fitted_open_ece(c: _Candidates, nfold: int) -> float:
    conf = np.zeros(len(c.tag))
    for f in range(nfold):
        test = c.fold == f
        if test.any():
            train = ~test
            coef = fit_acceptance(c.prob[train], c.sim[train], c.correct[train], c.weight[train])
            conf[test] = accept_confidence(coef, c.prob[test], c.sim[test])
    return expected_calibration_error(conf, c.correct)
