"""Tag-model quality exploration on the clothing dataset (research script, not package code).

Usage::

    python benchmarks/quality/explore.py features   # cache pooled features in /tmp/q-cache
    python benchmarks/quality/explore.py eval       # top-1 / ECE / open-set / timing tables

Environment: ``Q_CACHE`` sets the features/log directory (default /tmp/q-cache); ``Q_AUG``
sets the augmented views per photo extracted by ``features`` (default 8; 0 = plain views
only, then methods with ``aug=True`` cannot run).

Features: one plain view per photo (the view tagging sees) plus ``N_AUG`` augmented views
(random resized crop, horizontal flip, colour jitter) that only the training examples use.
All hyperparameters are chosen by cross-validation inside the training examples; held-out
photos are only used for the reported numbers.
"""

from __future__ import annotations

import csv
import itertools
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path("/work/shared/datasets/clothing")
CACHE = Path(os.environ.get("Q_CACHE", "/tmp/q-cache"))
MODELS = Path("/tmp/q-models")
N_AUG = int(os.environ.get("Q_AUG", "8"))
OUT_OF_MODEL = ("Other", "Not sure")


# --------------------------------------------------------------------------- features


def load_labels() -> tuple[list[str], np.ndarray, np.ndarray]:
    files, labels, kids = [], [], []
    with open(DATA / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            files.append(row["file"])
            labels.append(row["label"])
            kids.append(row["kids"] == "True")
    return files, np.array(labels), np.array(kids)


def augment(img: Any, rng: np.random.Generator) -> Any:
    """Random resized crop (area 0.35-1, aspect 3/4-4/3), flip, colour jitter (+-0.3)."""
    from PIL import ImageEnhance, ImageOps

    w, h = img.size
    for _ in range(10):
        area = w * h * rng.uniform(0.35, 1.0)
        ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw, ch = round((area * ratio) ** 0.5), round((area / ratio) ** 0.5)
        if 0 < cw <= w and 0 < ch <= h:
            x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            img = img.crop((x0, y0, x0 + cw, y0 + ch))
            break
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    for enh in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        img = enh(img).enhance(float(rng.uniform(0.7, 1.3)))
    return img


def extract_features() -> None:
    from indexer.embedders import EmbedderOptions, create_embedder
    from indexer.images import decode

    CACHE.mkdir(parents=True, exist_ok=True)
    files, _, _ = load_labels()
    emb = create_embedder(
        "efficientnet-lite0", EmbedderOptions(models_dir=MODELS, runtime="onnx", threads=2)
    )
    rng = np.random.default_rng(0)
    base = np.zeros((len(files), 1280), np.float32)
    aug = np.zeros((len(files), N_AUG, 1280), np.float32)
    t0 = time.perf_counter()
    bs = 4 if N_AUG else 32  # photos per batch -> 4 * (1 + N_AUG) = 36 views per forward call
    for s in range(0, len(files), bs):
        views = []
        chunk = files[s : s + bs]
        for p in chunk:
            img = decode((DATA / p).read_bytes(), max_pixels=10**8, min_side=224).image
            views.append(emb.prepare(img))
            views.extend(emb.prepare(augment(img, rng)) for _ in range(N_AUG))
        x = emb.embed(views).reshape(len(chunk), 1 + N_AUG, -1)
        base[s : s + len(chunk)] = x[:, 0]
        aug[s : s + len(chunk)] = x[:, 1:]
        if s % 200 == 0:
            print(f"{s}/{len(files)} {time.perf_counter() - t0:.0f}s", flush=True)
    np.save(CACHE / "base.npy", base)
    if N_AUG:
        np.save(CACHE / "aug.npy", aug)
    print(f"done in {time.perf_counter() - t0:.0f}s")


# --------------------------------------------------------------------------- transforms


def l2n(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


FEATS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "raw": lambda x: x,
    "l2": l2n,
    "pn": lambda x: l2n(np.sqrt(np.maximum(x, 0.0))),  # power (sqrt) + L2 normalisation
}


# --------------------------------------------------------------------------- classifiers
# A classifier: fit(Xv, y, hp) -> predict(X) -> logits. Xv: (n_img, n_views, d) training
# views (n_views = 1 without augmentation); X: (m, d) one plain view per test photo.

Predict = Callable[[np.ndarray], np.ndarray]


def _flat(xv: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return xv.reshape(-1, xv.shape[-1]), np.repeat(y, xv.shape[1])


def softmax_lr(x: np.ndarray, y: np.ndarray, k: int, c: float) -> tuple[Any, Any]:
    """Multinomial logistic regression, sklearn's objective (C * sum CE + |W|^2 / 2),
    full-batch L-BFGS in torch (much faster than sklearn here)."""
    import torch

    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(y.astype(np.int64))
    w = torch.zeros(x.shape[1], k, requires_grad=True)
    b = torch.zeros(k, requires_grad=True)
    lam = 1.0 / (c * len(y))
    opt = torch.optim.LBFGS(
        [w, b], lr=1, max_iter=200, tolerance_grad=1e-6, line_search_fn="strong_wolfe"
    )

    def closure() -> Any:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w + b, yt) + 0.5 * lam * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), b.detach().numpy()


def fit_lr(xv: np.ndarray, y: np.ndarray, hp: dict[str, Any]) -> Predict:
    x, yy = _flat(xv, y)
    w, b = softmax_lr(x, yy, int(y.max()) + 1, hp["C"])
    return lambda z: z @ w + b


def fit_svm(xv: np.ndarray, y: np.ndarray, hp: dict[str, Any]) -> Predict:
    from sklearn.svm import LinearSVC

    x, yy = _flat(xv, y)
    m = LinearSVC(C=hp["C"], max_iter=5000).fit(x, yy)
    return lambda z: m.decision_function(z)


def fit_ncm(xv: np.ndarray, y: np.ndarray, hp: dict[str, Any]) -> Predict:
    """Nearest class mean, cosine on train-mean-centred L2 features (temperature = CV'd
    calibration step)."""
    x, yy = _flat(xv, y)
    mu = x.mean(0)
    k = int(y.max()) + 1
    protos = l2n(np.stack([l2n(x[yy == c] - mu).mean(0) for c in range(k)]))
    return lambda z: 10.0 * l2n(z - mu) @ protos.T


def fit_lda(xv: np.ndarray, y: np.ndarray, hp: dict[str, Any]) -> Predict:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    x, yy = _flat(xv, y)
    m = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=hp["shrink"]).fit(x, yy)
    return lambda z: m.decision_function(z)


def fit_tip(xv: np.ndarray, y: np.ndarray, hp: dict[str, Any]) -> Predict:
    """Tip-Adapter-like: LR logits + alpha * kNN cache affinity (centred cosine)."""
    x, yy = _flat(xv, y)
    k = int(y.max()) + 1
    w, b = softmax_lr(x, yy, k, hp["C"])
    mu = x.mean(0)
    keys = l2n(x - mu)
    onehot = np.eye(k, dtype=np.float32)[yy] / xv.shape[1]
    alpha, beta = hp["alpha"], hp["beta"]

    def predict(z: np.ndarray) -> np.ndarray:
        aff = np.exp(-beta * (1.0 - l2n(z - mu) @ keys.T)) @ onehot
        return z @ w + b + alpha * aff

    return predict


def fit_pcaw(xv: np.ndarray, y: np.ndarray, hp: dict[str, Any]) -> Predict:
    """PCA whitening (regularised eigenvalues) of the training views, L2, then LR."""
    x, yy = _flat(xv, y)
    mu = x.mean(0)
    _, s, vt = np.linalg.svd(x - mu, full_matrices=False)
    lam = s**2 / len(x)
    proj = vt.T / np.sqrt(lam + hp["eps"] * lam.mean())
    w, b = softmax_lr(l2n((x - mu) @ proj), yy, int(y.max()) + 1, hp["C"])
    return lambda z: l2n((z - mu) @ proj) @ w + b


def grid(**kw: list[Any]) -> list[dict[str, Any]]:
    import itertools

    keys = list(kw)
    return [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*kw.values())]


@dataclass
class Method:
    name: str
    feat: str
    fit: Callable[[np.ndarray, np.ndarray, dict[str, Any]], Predict]
    hps: list[dict[str, Any]]
    aug: bool = False
    members: list[Method] = field(default_factory=list)  # ensemble of calibrated members


def methods() -> list[Method]:
    c_l2 = grid(C=[10.0, 30.0, 100.0])
    lr_aug = Method("lr-pn-cv +aug", "pn", fit_lr, c_l2, aug=True)
    ncm_aug = Method("ncm-pn +aug", "pn", fit_ncm, grid(k=[0]), aug=True)
    return [
        Method("lr-raw-C1 (baseline)", "raw", fit_lr, grid(C=[1.0])),
        Method("lr-raw-cv", "raw", fit_lr, grid(C=[0.1, 1.0, 10.0])),
        Method("lr-l2-cv", "l2", fit_lr, c_l2),
        Method("lr-pn-cv", "pn", fit_lr, c_l2),
        Method("svm-pn-cv", "pn", fit_svm, grid(C=[0.1, 1.0, 10.0])),
        Method("ncm-pn", "pn", fit_ncm, grid(k=[0])),
        Method("lda-pn-cv", "pn", fit_lda, grid(shrink=[0.5, 0.8])),
        Method("pcaw-pn-cv", "pn", fit_pcaw, grid(eps=[0.1, 1.0], C=[10.0, 100.0])),
        Method("tip-pn-cv", "pn", fit_tip, grid(C=[30.0], alpha=[0.0, 1.0, 3.0], beta=[3.0, 10.0])),
        lr_aug,
        ncm_aug,
        Method("lda-pn-cv +aug", "pn", fit_lda, grid(shrink=[0.5, 0.8]), aug=True),
        Method("ens(lr+ncm) pn +aug", "pn", fit_lr, [], aug=True, members=[lr_aug, ncm_aug]),
    ]


# --------------------------------------------------------------------------- CV machinery


def strat_folds(y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    fold = np.zeros(len(y), int)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        fold[idx] = (np.arange(len(idx)) + rng.integers(k)) % k
    return fold


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    from scipy.optimize import minimize_scalar

    def nll(t: float) -> float:
        return float(-log_softmax(logits / np.exp(t))[np.arange(len(y)), y].mean())

    return float(np.exp(minimize_scalar(nll, bounds=(-5, 5), method="bounded").x))


def ece(prob: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    conf, pred = prob.max(1), prob.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    e = 0.0
    for lo, hi in itertools.pairwise(edges):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            e += m.mean() * abs((pred[m] == y[m]).mean() - conf[m].mean())
    return float(e)


@dataclass
class Fitted:
    predict: Predict  # calibrated logits (already divided by the CV temperature)
    oof: np.ndarray  # calibrated out-of-fold logits on the training examples
    hp: dict[str, Any]
    t: float = 1.0  # the CV temperature


def train(m: Method, xv: np.ndarray, y: np.ndarray, fold: np.ndarray) -> Fitted:
    """Choose hp by CV accuracy (ties: lower NLL), refit on all, fit temperature on OOF."""
    if m.members:
        parts = [train(p, xv, y, fold) for p in m.members]

        def mean_logp(zs: list[np.ndarray]) -> np.ndarray:
            return np.log(np.mean([np.exp(log_softmax(z)) for z in zs], 0) + 1e-12)

        oof = mean_logp([p.oof for p in parts])
        t = fit_temperature(oof, y)
        return Fitted(
            lambda z: mean_logp([p.predict(z) for p in parts]) / t,
            oof / t,
            {p.hp.__repr__(): 0 for p in parts},
        )
    best: tuple[float, float, dict[str, Any], np.ndarray] | None = None
    k = int(y.max()) + 1
    for hp in m.hps:
        oof = np.zeros((len(y), k), np.float32)
        for f in np.unique(fold):
            tr = fold != f
            oof[~tr] = m.fit(xv[tr], y[tr], hp)(xv[~tr, 0])
        acc = float((oof.argmax(1) == y).mean())
        nll = float(-log_softmax(oof / fit_temperature(oof, y))[np.arange(len(y)), y].mean())
        if best is None or (acc, -nll) > (best[0], -best[1]):
            best = (acc, nll, hp, oof)
    assert best is not None
    _, _, hp, oof = best
    t = fit_temperature(oof, y)
    pred = m.fit(xv, y, hp)
    return Fitted(lambda z: pred(z) / t, oof / t, hp, t)


# --------------------------------------------------------------------------- experiments


class Data:
    def __init__(self) -> None:
        self.files, self.labels, self.kids = load_labels()
        self.base = np.load(CACHE / "base.npy")
        aug = CACHE / "aug.npy"
        self.aug = np.load(aug) if aug.exists() else np.zeros((len(self.base), 0, 1280))
        self.types = sorted(set(self.labels) - set(OUT_OF_MODEL))
        self._feat: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def feat(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self._feat:
            self._feat[name] = (FEATS[name](self.base), FEATS[name](self.aug))
        return self._feat[name]

    def views(self, m: Method, idx: np.ndarray) -> np.ndarray:
        b, a = self.feat(m.feat)
        if not m.aug:
            return b[idx, None, :]
        return np.concatenate([b[idx, None, :], a[idx]], axis=1)


def sample(
    labels: np.ndarray, classes: list[str], n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    tr = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), n, replace=False) for c in classes]
    )
    inm = np.isin(labels, classes)
    te = np.setdiff1d(np.flatnonzero(inm), tr)
    return tr, te


def log(line: str) -> None:
    print(line, flush=True)
    with open(CACHE / "explore.log", "a") as f:
        f.write(line + "\n")


def run_closed(d: Data, ms: list[Method], ns: tuple[int, ...], seeds: int) -> None:
    cidx = {c: i for i, c in enumerate(d.types)}
    y_all = np.array([cidx.get(s, -1) for s in d.labels])
    for n in ns:
        res: dict[str, list[tuple[float, float, float]]] = {m.name: [] for m in ms}
        for seed in range(seeds):
            rng = np.random.default_rng(1000 * n + seed)
            tr, te = sample(d.labels, d.types, n, rng)
            fold = strat_folds(y_all[tr], 5, rng)
            for m in ms:
                t0 = time.perf_counter()
                f = train(m, d.views(m, tr), y_all[tr], fold)
                dt = time.perf_counter() - t0
                z = f.predict(d.feat(m.feat)[0][te])
                p = np.exp(log_softmax(z))
                acc = float((z.argmax(1) == y_all[te]).mean())
                res[m.name].append((acc, ece(p, y_all[te]), dt))
                log(
                    f"n={n} seed={seed} {m.name:28s} top1={acc:.3f} "
                    f"ece={res[m.name][-1][1]:.3f} t={dt:.1f}s hp={f.hp}"
                )
        for m in ms:
            r = np.array(res[m.name])
            log(
                f"SUMMARY n={n} {m.name:28s} top1={r[:, 0].mean():.3f}±{r[:, 0].std():.3f} "
                f"ece={r[:, 1].mean():.3f} cvtrain={r[:, 2].mean():.1f}s"
            )


def thresholds(oof: np.ndarray, y: np.ndarray, k: int, target: float) -> np.ndarray:
    """Per tag: the lowest confidence threshold whose predictions (argmax == tag, conf >=
    threshold) reach ``target`` precision on the out-of-fold predictions. y == -1: pseudo
    out-of-model examples (any tag on them is wrong). No such threshold: never tag (1.01)."""
    p = np.exp(log_softmax(oof))
    conf, pred = p.max(1), p.argmax(1)
    th = np.full(k, 1.01)
    for c in range(k):
        m = pred == c
        if not m.any():
            continue
        order = np.argsort(-conf[m])
        ok = (y[m] == c)[order]
        prec = np.cumsum(ok) / np.arange(1, len(ok) + 1)
        good = np.flatnonzero(prec >= target)
        if len(good):
            th[c] = conf[m][order][good[-1]]
    return th


def pseudo_unknown_oof(
    m: Method,
    xv: np.ndarray,
    y: np.ndarray,
    fold: np.ndarray,
    t_predict: Fitted,
    rng: np.random.Generator,
    rounds: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """Extra OOF predictions where 2 tags are left out of training: their examples act as
    out-of-model photos (label -1). Uses the hp chosen by the main CV and its temperature
    (taken from the main fit's OOF scale)."""
    k = int(y.max()) + 1
    zs, ys = [], []
    for r in range(rounds):
        gone = rng.choice(k, 2, replace=False)
        keep = np.setdiff1d(np.arange(k), gone)
        remap = -np.ones(k, int)
        remap[keep] = np.arange(len(keep))
        f = r % (fold.max() + 1)
        tr = (fold != f) & np.isin(y, keep)
        te = (fold == f) | ~np.isin(y, keep)
        hp = t_predict.hp
        pred = m.fit(xv[tr], remap[y[tr]], hp)
        z = pred(xv[te, 0])
        full = np.full((te.sum(), k), -1e9, np.float32)  # scores for the k tags
        full[:, keep] = z
        zs.append(full)
        ys.append(np.where(np.isin(y[te], keep), y[te], -1))
    return np.concatenate(zs), np.concatenate(ys)


def run_open(d: Data, ms: list[Method], seeds: int, n: int = 30, target: float = 0.9) -> None:
    for m in ms:
        rows = []
        for seed in range(seeds):
            rng = np.random.default_rng(77 + seed)
            known = sorted(rng.choice(d.types, 10, replace=False).tolist())
            cidx = {c: i for i, c in enumerate(known)}
            y_all = np.array([cidx.get(s, -1) for s in d.labels])
            tr, te = sample(d.labels, known, n, rng)
            fold = strat_folds(y_all[tr], 5, rng)
            xv = d.views(m, tr)
            f = train(m, xv, y_all[tr], fold)
            x_te = d.feat(m.feat)[0]
            oom = np.flatnonzero(y_all == -1)  # Other / Not sure + the 5 left-out types
            out = {}
            variants = {"cv": (f.oof, y_all[tr])}
            if not m.members:
                zu, yu = pseudo_unknown_oof(m, xv, y_all[tr], fold, f, rng)
                tt = 1.0 / f.t
                variants["cv+pseudo-unknown"] = (
                    np.concatenate([f.oof, zu * tt]),
                    np.concatenate([y_all[tr], yu]),
                )
            for vname, (zo, yo) in variants.items():
                th = thresholds(zo, yo, 10, target)
                p_in = np.exp(log_softmax(f.predict(x_te[te])))
                p_out = np.exp(log_softmax(f.predict(x_te[oom])))
                tag_in = p_in.max(1) >= th[p_in.argmax(1)]
                tag_out = p_out.max(1) >= th[p_out.argmax(1)]
                correct = tag_in & (p_in.argmax(1) == y_all[te])
                out[vname] = (
                    float(1 - tag_out.mean()),  # out-of-model photos left untagged
                    float(correct.sum() / max(tag_in.sum(), 1)),  # precision, in-model
                    float(correct.mean()),  # recall, in-model
                    float(correct.sum() / max(tag_in.sum() + tag_out.sum(), 1)),  # precision all
                )
            rows.append(out)
            for vname, v in out.items():
                log(
                    f"open seed={seed} {m.name:28s} {vname:18s} oom_untagged={v[0]:.3f} "
                    f"prec_in={v[1]:.3f} rec_in={v[2]:.3f} prec_all={v[3]:.3f} "
                    f"(n_oom={len(oom)})"
                )
        for vname in rows[0]:
            r = np.array([row[vname] for row in rows])
            mu = r.mean(0)
            log(
                f"SUMMARY open {m.name:28s} {vname:18s} oom_untagged={mu[0]:.3f} "
                f"prec_in={mu[1]:.3f} rec_in={mu[2]:.3f} prec_all={mu[3]:.3f}"
            )


def run_kids(d: Data, ms: list[Method], ns: tuple[int, ...], seeds: int) -> None:
    """Second aspect: adult vs kids, on all photos (n examples per side, rest held out)."""
    y_all = d.kids.astype(int)
    names = np.where(d.kids, "kids", "adult")
    for n in ns:
        for m in ms:
            r = []
            for seed in range(seeds):
                rng = np.random.default_rng(5000 + 100 * n + seed)
                tr, _ = sample(names, ["adult", "kids"], n, rng)
                te = np.setdiff1d(np.arange(len(y_all)), tr)
                f = train(m, d.views(m, tr), y_all[tr], strat_folds(y_all[tr], 5, rng))
                z = f.predict(d.feat(m.feat)[0][te])
                pred, yt = z.argmax(1), y_all[te]
                bal = 0.5 * ((pred[yt == 0] == 0).mean() + (pred[yt == 1] == 1).mean())
                r.append(((pred == yt).mean(), bal, ece(np.exp(log_softmax(z)), yt)))
            a = np.array(r)
            log(
                f"SUMMARY kids n={n} {m.name:28s} acc={a[:, 0].mean():.3f} "
                f"balacc={a[:, 1].mean():.3f}±{a[:, 1].std():.3f} ece={a[:, 2].mean():.3f}"
            )


def run_timing(d: Data, ms: list[Method], tags: int = 50, n: int = 50) -> None:
    """Whole training pipeline (CV hp choice + refit + temperature + thresholds) for a
    synthetic 50-tag x 50-example model: photos drawn with replacement, random tags."""
    rng = np.random.default_rng(3)
    tr = rng.choice(len(d.labels), tags * n, replace=True)
    y = np.repeat(np.arange(tags), n)
    fold = strat_folds(y, 5, rng)
    for m in ms:
        xv = d.views(m, tr)
        t0 = time.perf_counter()
        f = train(m, xv, y, fold)
        thresholds(f.oof, y, tags, 0.9)
        dt = time.perf_counter() - t0
        log(
            f"SUMMARY timing {tags}x{n} {m.name:28s} views={xv.shape[1]} "
            f"train={dt:.2f}s ({len(m.hps)} hp x 5 folds + refit)"
        )


# --------------------------------------------------------------------------- semi-supervised


def soft_lr(x: np.ndarray, t: np.ndarray, wt: np.ndarray, c: float) -> tuple[Any, Any]:
    """Weighted soft-target multinomial LR (same objective scale as ``softmax_lr``)."""
    import torch

    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    tt = torch.from_numpy(t.astype(np.float32))
    wtt = torch.from_numpy(wt.astype(np.float32))
    w = torch.zeros(x.shape[1], t.shape[1], requires_grad=True)
    b = torch.zeros(t.shape[1], requires_grad=True)
    lam = 1.0 / (c * float(wt.sum()))
    opt = torch.optim.LBFGS(
        [w, b], lr=1, max_iter=200, tolerance_grad=1e-6, line_search_fn="strong_wolfe"
    )

    def closure() -> Any:
        opt.zero_grad()
        ce = -(tt * torch.log_softmax(xt @ w + b, 1)).sum(1)
        loss = (wtt * ce).sum() / wtt.sum() + 0.5 * lam * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), b.detach().numpy()


def semi_fit(x: np.ndarray, y: np.ndarray, u: np.ndarray, hp: dict[str, Any], c: float) -> Predict:
    """Labelled x/y plus unlabelled library features u (one plain view each).

    ``kind`` self: self-training, 2 rounds, pseudo-label u where calibrated-ish confidence
    >= tau, weight gamma. ``kind`` spread: label spreading on a cosine kNN graph over x+u
    (k=10, alpha=0.9), soft labels on u with weight gamma * confidence."""
    k = int(y.max()) + 1
    onehot = np.eye(k, dtype=np.float32)[y]
    w, b = softmax_lr(x, y, k, c)
    if hp["gamma"] == 0:
        return lambda z: z @ w + b
    if hp["kind"] == "self":
        for _ in range(2):
            p = np.exp(log_softmax(u @ w + b))
            keep = p.max(1) >= hp["tau"]
            t = np.eye(k, dtype=np.float32)[p.argmax(1)[keep]]
            xs = np.concatenate([x, u[keep]])
            ts = np.concatenate([onehot, t])
            ws = np.concatenate([np.ones(len(x)), np.full(keep.sum(), hp["gamma"])])
            w, b = soft_lr(xs, ts, ws, c)
        return lambda z: z @ w + b
    allx = l2n(np.concatenate([x, u]) - x.mean(0))
    sim = allx @ allx.T
    np.fill_diagonal(sim, -1)
    nn = np.argsort(-sim, 1)[:, :10]
    g = np.zeros_like(sim)
    rows = np.repeat(np.arange(len(allx)), 10)
    g[rows, nn.ravel()] = np.maximum(sim[rows, nn.ravel()], 0) ** 3
    g = g + g.T
    dinv = 1 / np.sqrt(np.maximum(g.sum(1), 1e-12))
    s = dinv[:, None] * g * dinv[None, :]
    y0 = np.zeros((len(allx), k), np.float32)
    y0[: len(x)] = onehot
    f = y0.copy()
    for _ in range(30):
        f = 0.9 * s @ f + 0.1 * y0
    fu = np.maximum(f[len(x) :], 0)
    conf = fu.max(1) / np.maximum(fu.sum(1), 1e-12)
    tu = fu / np.maximum(fu.sum(1, keepdims=True), 1e-12)
    w, b = soft_lr(
        np.concatenate([x, u]),
        np.concatenate([onehot, tu]),
        np.concatenate([np.ones(len(x)), hp["gamma"] * conf]),
        c,
    )
    return lambda z: z @ w + b


def run_semi(d: Data, ns: tuple[int, ...], seeds: int) -> None:
    """Library photos without labels help training? Held-out in-model photos are split in
    half: one half (+ all out-of-model photos) is the unlabelled library, the other half is
    the test set; supervised and semi-supervised are scored on the same test half."""
    cidx = {c: i for i, c in enumerate(d.types)}
    y_all = np.array([cidx.get(s, -1) for s in d.labels])
    x_all = d.feat("pn")[0]
    hps = [
        {"kind": "self", "tau": 0.0, "gamma": 0.0},
        *grid(kind=["self"], tau=[0.5, 0.8], gamma=[0.5, 1.0]),
        *grid(kind=["spread"], tau=[0.0], gamma=[0.5, 1.0]),
    ]
    for n in ns:
        res: dict[str, list[float]] = {}
        for seed in range(seeds):
            rng = np.random.default_rng(1000 * n + seed)
            tr, te = sample(d.labels, d.types, n, rng)
            te = rng.permutation(te)
            lib = np.concatenate([te[: len(te) // 2], np.flatnonzero(y_all == -1)])
            test = te[len(te) // 2 :]
            y = y_all[tr]
            fold = strat_folds(y, 5, rng)
            c = train(
                Method("lr", "pn", fit_lr, grid(C=[10.0, 30.0, 100.0])), x_all[tr, None], y, fold
            ).hp["C"]
            cv = []
            for hp in hps:
                hit = 0
                for f in range(5):
                    a, h = fold != f, fold == f
                    pred = semi_fit(
                        x_all[tr[a]], y[a], np.concatenate([x_all[lib], x_all[tr[h]]]), hp, c
                    )
                    hit += int((pred(x_all[tr[h]]).argmax(1) == y[h]).sum())
                cv.append(hit / len(y))
            best = hps[int(np.argmax(cv))]
            for name, hp in (("sup lr-pn", hps[0]), ("semi (hp by CV)", best)):
                pred = semi_fit(x_all[tr], y, x_all[lib], hp, c)
                acc = float((pred(x_all[test]).argmax(1) == y_all[test]).mean())
                res.setdefault(name, []).append(acc)
                log(f"semi n={n} seed={seed} {name:16s} top1={acc:.3f} C={c} hp={hp}")
            for hp in hps[1:]:
                pred = semi_fit(x_all[tr], y, x_all[lib], hp, c)
                acc = float((pred(x_all[test]).argmax(1) == y_all[test]).mean())
                res.setdefault(str(hp), []).append(acc)
        for name, r in res.items():
            log(f"SUMMARY semi n={n} {name:50s} top1={np.mean(r):.3f}±{np.std(r):.3f}")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "eval"
    only = sys.argv[2].split(",") if len(sys.argv) > 2 else None
    if cmd == "features":
        extract_features()
        sys.exit()
    import torch

    torch.set_num_threads(2)
    data = Data()
    ms = [m for m in methods() if only is None or m.name in only]
    if cmd in ("eval", "closed"):
        run_closed(data, ms, (10, 30, 50), 3)
    if cmd in ("eval", "open"):
        run_open(data, ms, 3)
    if cmd in ("eval", "kids"):
        run_kids(data, ms, (10, 30, 50), 3)
    if cmd in ("eval", "semi"):
        run_semi(data, (10, 30, 50), 3)
    if cmd in ("eval", "timing"):
        run_timing(data, ms)
