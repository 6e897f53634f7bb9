"""Tag-model heads on centre-crop features: fast numpy shrinkage LDA and cheap add-ons
(research script, not package code; builds on ``explore.py``).

Usage (features of the current package preprocessing must be cached first)::

    Q_CACHE=/tmp/q-cache-crop Q_AUG=0 python benchmarks/quality/explore.py features
    export Q_CACHE=/tmp/q-cache-crop
    python benchmarks/quality/heads.py check     # numpy LDA == sklearn lsqr LDA
    python benchmarks/quality/heads.py flip      # pooled features of mirrored photos
    python benchmarks/quality/heads.py closed ["HEAD;..."]  # top-1 / ECE, n=10/30/50, seeds 0-2
    python benchmarks/quality/heads.py priors    # equal vs empirical priors, unbalanced n
    python benchmarks/quality/heads.py timing    # 50 tags x 50 examples, whole fit
    python benchmarks/quality/heads.py open      # 10 known types x 30, thresholds at prec 0.9
    python benchmarks/quality/heads.py colour-features  # synthetic recoloured photos
    python benchmarks/quality/heads.py colour    # colour aspect: visual vs histogram
    python benchmarks/quality/heads.py colour-hists  # more histogram variants, same photos
    python benchmarks/quality/heads.py colour2   # round 2: finer hue bins, concatenations
    python benchmarks/quality/heads.py colour3   # round 3: value bins + concatenation
    python benchmarks/quality/heads.py histcost  # ms per image for the colour histogram

Protocol as in ``explore.py``: n examples per tag drawn per seed (seeds 0-2), the rest
held out and only scored; every hyperparameter by 5-fold stratified CV inside the
training examples (ties on CV accuracy: lower NLL after the CV temperature).
Results go to stdout and ``$Q_CACHE/heads.log``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("Q_CACHE", "/tmp/q-cache-crop")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import explore as ex
import numpy as np

CACHE = ex.CACHE
SHRINK = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)


def log(line: str) -> None:
    print(line, flush=True)
    with open(CACHE / "heads.log", "a") as f:
        f.write(line + "\n")


# --------------------------------------------------------------------------- numpy LDA


class LDAFactors:
    """The shrinkage-independent part of sklearn's ``LinearDiscriminantAnalysis(
    solver="lsqr", shrinkage=s, priors=p)``: class means M, pooled within-class
    covariance S = sum_c p_c cov_c (biased per-class covariances, as sklearn), and its
    eigendecomposition S = V diag(lam) V^T (thin: from the SVD of the weighted centred
    rows when there are fewer rows than dimensions). For any s, with mu = trace(S)/d,

        W = ((1-s) S + s mu I)^-1 = V diag(1/((1-s) lam + s mu)) V^T + (I - V V^T)/(s mu)
        coef = M W,  intercept = -1/2 diag(M W M^T) + log p,  logits = x coef^T + intercept
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        k: int,
        priors: np.ndarray | None = None,
        row_w: np.ndarray | None = None,
        eig32: bool = True,
    ) -> None:
        x = np.asarray(x, np.float64)
        rw = np.ones(len(y)) if row_w is None else row_w
        cnt = np.bincount(y, weights=rw, minlength=k)
        self.means = (np.eye(k)[y] * rw[:, None]).T @ x / cnt[:, None]
        self.priors = cnt / cnt.sum() if priors is None else np.asarray(priors, float)
        w = np.sqrt(self.priors[y] * rw / cnt[y])  # row weights: S = sum_c p_c cov_c
        xc = (x - self.means[y]) * w[:, None]
        d = x.shape[1]
        if len(y) < d:
            _, sv, vt = np.linalg.svd(xc, full_matrices=False)
            self.lam, self.v = sv**2, vt.T
        elif eig32:  # float32 divide-and-conquer eigh: ~3x faster, same predictions
            import scipy.linalg

            lam, v = scipy.linalg.eigh((xc.T @ xc).astype(np.float32), driver="evd")
            self.lam, self.v = np.maximum(lam.astype(np.float64), 0.0), v.astype(np.float64)
        else:
            self.lam, self.v = np.linalg.eigh(xc.T @ xc)
            self.lam = np.maximum(self.lam, 0.0)
        self.mu = float(self.lam.sum() / d)  # trace(S) / d
        self.mv = self.means @ self.v  # (k, r)
        self.m2 = (self.means**2).sum(1)

    def _g(self, s: float) -> tuple[np.ndarray, float]:
        return 1.0 / ((1 - s) * self.lam + s * self.mu), s * self.mu

    def coef(self, s: float) -> tuple[np.ndarray, np.ndarray]:
        g, b = self._g(s)
        coef = (self.mv * g) @ self.v.T + (self.means - self.mv @ self.v.T) / b
        icpt = -0.5 * (self.means * coef).sum(1) + np.log(self.priors)
        return coef, icpt

    def logits_many(self, z: np.ndarray, shrinks: tuple[float, ...]) -> list[np.ndarray]:
        """Logits of z for several s at the cost of one projection."""
        z = np.asarray(z, np.float64)
        zv, zm = z @ self.v, z @ self.means.T
        resid = zm - zv @ self.mv.T  # z (I - VV^T) M^T
        mres = self.m2 - (self.mv**2).sum(1)
        out = []
        for s in shrinks:
            g, b = self._g(s)
            icpt = -0.5 * ((self.mv**2 * g).sum(1) + mres / b) + np.log(self.priors)
            out.append((zv * g) @ self.mv.T + resid / b + icpt)
        return out


def lda_direct(
    x: np.ndarray, y: np.ndarray, k: int, s: float, priors: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One shrinkage value: coef, intercept by one linear solve (no eigendecomposition);
    used for the final refit once CV has chosen s."""
    cnt = np.bincount(y, minlength=k).astype(np.float64)
    means = np.eye(k)[y].T @ x / cnt[:, None]
    p = cnt / cnt.sum() if priors is None else np.asarray(priors, float)
    xc = (x - means[y]) * np.sqrt(p[y] / cnt[y])[:, None]
    d = x.shape[1]
    if len(y) < d:  # Woodbury: (aS + bI)^-1 = (I - A^T (bI/a + A A^T)^-1 A) / b, S = A^T A
        a, b = 1 - s, s * float((xc**2).sum()) / d
        inner = np.linalg.solve(b / a * np.eye(len(y)) + xc @ xc.T, xc @ means.T)
        coef = (means - (xc.T @ inner).T) / b
    else:
        cov = xc.T @ xc
        mu = np.trace(cov) / d
        coef = np.linalg.solve((1 - s) * cov + s * mu * np.eye(d), means.T).T
    return coef, -0.5 * (means * coef).sum(1) + np.log(p)


# --------------------------------------------------------------------------- heads

# A head: cv_fit(xv, y, fold, k, x_extra) -> Fitted (calibrated predict, calibrated OOF
# logits, hp, temperature). xv: (n_img, n_views, d), view 0 = the plain view (the one
# scored); further views (mirror) are extra training rows only.


@dataclass
class Fitted:
    predict: Callable[[np.ndarray], np.ndarray]
    oof: np.ndarray
    hp: dict[str, Any]
    t: float
    raw: Callable[[np.ndarray], np.ndarray] | None = None  # uncalibrated logits
    factors_fn: Any = None


def _rows(xv: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return xv.reshape(-1, xv.shape[-1]), np.repeat(y, xv.shape[1])


def _pick(
    cands: list[tuple[dict[str, Any], np.ndarray]], y: np.ndarray
) -> tuple[dict[str, Any], np.ndarray]:
    best = None
    for hp, oof in cands:
        acc = float((oof.argmax(1) == y).mean())
        t = ex.fit_temperature(oof, y)
        nll = float(-ex.log_softmax(oof / t)[np.arange(len(y)), y].mean())
        if best is None or (acc, -nll) > (best[0], -best[1]):
            best = (acc, nll, hp, oof)
    assert best is not None
    return best[2], best[3]


def lda_head(
    shrinks: tuple[float, ...] = SHRINK, priors: str = "empirical", pca: tuple[int, ...] = (0,)
) -> Callable[..., Fitted]:
    """Shrinkage LDA, s (and PCA dims, 0 = none) by CV; priors "empirical" or "equal"."""

    def prior_vec(y: np.ndarray, k: int) -> np.ndarray | None:
        return np.full(k, 1.0 / k) if priors == "equal" else None

    def project(x: np.ndarray, kd: int) -> Callable[[np.ndarray], np.ndarray]:
        if kd == 0 or kd >= min(x.shape):
            return lambda z: z
        m = x.mean(0)
        _, _, vt = np.linalg.svd(x - m, full_matrices=False)
        p = vt[:kd].T
        return lambda z: (z - m) @ p

    def cv_fit(xv: np.ndarray, y: np.ndarray, fold: np.ndarray, k: int) -> Fitted:
        oofs = {(kd, s): np.zeros((len(y), k)) for kd in pca for s in shrinks}
        for f in np.unique(fold):
            tr = fold != f
            x, yy = _rows(xv[tr], y[tr])
            for kd in pca:
                pr = project(x, kd)
                fac = LDAFactors(pr(x), yy, k, prior_vec(yy, k))
                for s, z in zip(shrinks, fac.logits_many(pr(xv[~tr, 0]), shrinks), strict=True):
                    oofs[(kd, s)][~tr] = z
        hp, oof = _pick([({"pca": kd, "shrink": s}, o) for (kd, s), o in oofs.items()], y)
        t = ex.fit_temperature(oof, y)
        x, yy = _rows(xv, y)
        pr = project(x, hp["pca"])
        coef, icpt = lda_direct(pr(x), yy, k, hp["shrink"], prior_vec(yy, k))

        def raw(z: np.ndarray) -> np.ndarray:
            return pr(z) @ coef.T + icpt

        return Fitted(lambda z: raw(z) / t, oof / t, hp, t, raw)

    return cv_fit


def wncm_head(shrinks: tuple[float, ...] = SHRINK) -> Callable[..., Fitted]:
    """Whitening by the shrunk within-class covariance, then cosine to class means
    (centred by the training mean); scale 10 before the CV temperature."""

    def whiten(fac: LDAFactors, s: float, c: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        g, b = fac._g(s)
        gs, bs = np.sqrt(g), 1 / np.sqrt(b)

        def w(z: np.ndarray) -> np.ndarray:
            zc = z - c
            zv = zc @ fac.v
            return (zv * gs) @ fac.v.T + (zc - zv @ fac.v.T) * bs

        return w

    def score(fac: LDAFactors, s: float, c: np.ndarray, z: np.ndarray) -> np.ndarray:
        w = whiten(fac, s, c)
        return 10.0 * ex.l2n(w(z)) @ ex.l2n(w(fac.means)).T

    def cv_fit(xv: np.ndarray, y: np.ndarray, fold: np.ndarray, k: int) -> Fitted:
        oofs = {s: np.zeros((len(y), k)) for s in shrinks}
        for f in np.unique(fold):
            tr = fold != f
            x, yy = _rows(xv[tr], y[tr])
            fac = LDAFactors(x, yy, k)
            for s in shrinks:
                oofs[s][~tr] = score(fac, s, x.mean(0), xv[~tr, 0])
        hp, oof = _pick([({"shrink": s}, o) for s, o in oofs.items()], y)
        t = ex.fit_temperature(oof, y)
        x, yy = _rows(xv, y)
        fac = LDAFactors(x, yy, k)
        c = x.mean(0)
        return Fitted(
            lambda z: score(fac, hp["shrink"], c, z) / t,
            oof / t,
            hp,
            t,
            lambda z: score(fac, hp["shrink"], c, z),
        )

    return cv_fit


def lr_head(cs: tuple[float, ...] = (3.0, 10.0, 30.0)) -> Callable[..., Fitted]:
    """Multinomial LR (torch L-BFGS, explore.softmax_lr), C by CV."""

    def cv_fit(xv: np.ndarray, y: np.ndarray, fold: np.ndarray, k: int) -> Fitted:
        cands = []
        for c in cs:
            oof = np.zeros((len(y), k))
            for f in np.unique(fold):
                tr = fold != f
                w, b = ex.softmax_lr(*_rows(xv[tr], y[tr]), k, c)
                oof[~tr] = xv[~tr, 0] @ w + b
            cands.append(({"C": c}, oof))
        hp, oof = _pick(cands, y)
        t = ex.fit_temperature(oof, y)
        w, b = ex.softmax_lr(*_rows(xv, y), k, hp["C"])
        return Fitted(lambda z: (z @ w + b) / t, oof / t, hp, t, lambda z: z @ w + b)

    return cv_fit


def combine(parts: list[Fitted], y: np.ndarray) -> Fitted:
    """Ensemble: average of the members' calibrated probabilities, then one more
    temperature on the averaged out-of-fold log-probabilities."""

    def mean_logp(zs: list[np.ndarray]) -> np.ndarray:
        return np.log(np.mean([np.exp(ex.log_softmax(z)) for z in zs], 0) + 1e-12)

    oof = mean_logp([p.oof for p in parts])
    t = ex.fit_temperature(oof, y)
    return Fitted(
        lambda z: mean_logp([p.predict(z) for p in parts]) / t,
        oof / t,
        {f"m{i}": p.hp for i, p in enumerate(parts)},
        t,
    )


# name -> (cv_fit, uses mirrored training views); or ("ens", member names) for ensembles
HEADS: dict[str, Any] = {
    "lda-pn s{0.5,0.8} (previous best)": (lda_head((0.5, 0.8)), False),
    "lda-pn s{.5..0.98}": (lda_head(), False),
    "lda-pn s{.5..0.98} equal priors": (lda_head(priors="equal"), False),
    "lda-pn pca{128,256,512} x s": (lda_head(pca=(128, 256, 512)), False),
    "lda-pn pca512 x s": (lda_head(pca=(512,)), False),
    "wncm-pn s{.5..0.98}": (wncm_head(), False),
    "lr-pn C{3,10,30}": (lr_head(), False),
    "ens lda + lr-pn": ("ens", ("lda-pn s{.5..0.98}", "lr-pn C{3,10,30}")),
    "ens lda + wncm": ("ens", ("lda-pn s{.5..0.98}", "wncm-pn s{.5..0.98}")),
    "lda-pn s{.5..0.98} +flip": (lda_head(), True),
    "lr-pn C{3,10,30} +flip": (lr_head(), True),
    "ens lda + lr-pn +flip": ("ens", ("lda-pn s{.5..0.98} +flip", "lr-pn C{3,10,30} +flip")),
}


# --------------------------------------------------------------------------- data


class Data:
    def __init__(self) -> None:
        self.files, self.labels, self.kids = ex.load_labels()
        self.base = ex.FEATS["pn"](np.load(CACHE / "base.npy").astype(np.float64))
        fp = CACHE / "flip.npy"
        self.flip = ex.FEATS["pn"](np.load(fp).astype(np.float64)) if fp.exists() else None
        self.types = sorted(set(self.labels) - set(ex.OUT_OF_MODEL))

    def views(self, idx: np.ndarray, flip: bool) -> np.ndarray:
        if not flip:
            return self.base[idx, None, :]
        assert self.flip is not None, "run `heads.py flip` first"
        return np.stack([self.base[idx], self.flip[idx]], 1)


def extract_flip() -> None:
    from PIL import ImageOps

    from indexer.embedders import EmbedderOptions, create_embedder
    from indexer.images import decode

    emb = create_embedder(
        "efficientnet-lite0", EmbedderOptions(models_dir=ex.MODELS, runtime="onnx", threads=2)
    )
    files, _, _ = ex.load_labels()
    out = np.zeros((len(files), 1280), np.float32)
    t0 = time.perf_counter()
    for s in range(0, len(files), 32):
        chunk = files[s : s + 32]
        views = []
        for p in chunk:
            img = decode((ex.DATA / p).read_bytes(), max_pixels=10**8, min_side=224).image
            views.append(emb.prepare(ImageOps.mirror(img)))
        out[s : s + len(chunk)] = emb.embed(views)
    np.save(CACHE / "flip.npy", out)
    log(f"flip features: {len(files)} photos in {time.perf_counter() - t0:.1f}s")


# --------------------------------------------------------------------------- experiments


def check() -> None:
    """numpy LDA reproduces sklearn's lsqr LDA (decision_function and predictions)."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    d = Data()
    cidx = {c: i for i, c in enumerate(d.types)}
    y_all = np.array([cidx.get(s, -1) for s in d.labels])
    cases = []
    for n in (10, 50):
        tr, te = ex.sample(d.labels, d.types, n, np.random.default_rng(n))
        cases.append((f"n={n}", d.base[tr], y_all[tr], te))
    # unbalanced (n_c 30..60) and, with mirrored rows, more rows than dimensions (eigh path)
    rng = np.random.default_rng(5)
    tr = np.concatenate(
        [
            rng.choice(np.flatnonzero(d.labels == c), int(m), replace=False)
            for c, m in zip(d.types, rng.integers(30, 61, 15), strict=True)
        ]
    )
    te = np.setdiff1d(np.flatnonzero(y_all >= 0), tr)
    assert d.flip is not None
    cases.append(("unbal+flip", np.vstack([d.base[tr], d.flip[tr]]), np.tile(y_all[tr], 2), te))
    for name, x, y, te in cases:
        for pri in (None, np.full(15, 1 / 15)):
            fp = LDAFactors(x, y, 15, pri)
            for s in (0.5, 0.8, 0.98):
                sk = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=s, priors=pri).fit(x, y)
                zs = sk.decision_function(d.base[te])
                coef, icpt = fp.coef(s)
                zn = d.base[te] @ coef.T + icpt
                zm = fp.logits_many(d.base[te], (s,))[0]
                c2, i2 = lda_direct(x, y, 15, s, pri)
                zd = d.base[te] @ c2.T + i2
                z64 = LDAFactors(x, y, 15, pri, eig32=False).logits_many(d.base[te], (s,))[0]
                log(
                    f"check {name} s={s} direct: max|dz|={np.abs(zs - zd).max():.2e}; "
                    f"eig float64: max|dz|={np.abs(zs - z64).max():.2e} "
                    f"pred agree={np.mean(zs.argmax(1) == zm.argmax(1)):.4f}"
                )
                log(
                    f"check {name} rows={len(y)} priors={'equal' if pri is not None else 'emp'} "
                    f"s={s}: max|dz| coef={np.abs(zs - zn).max():.2e} "
                    f"many={np.abs(zs - zm).max():.2e} "
                    f"pred agree={np.mean(zs.argmax(1) == zn.argmax(1)):.4f}"
                )


def run_closed(names: list[str] | None, ns: tuple[int, ...] = (10, 30, 50), seeds: int = 3) -> None:
    d = Data()
    hs = {k: v for k, v in HEADS.items() if names is None or k in names}
    for v in list(hs.values()):  # ensembles need their members
        if v[0] == "ens":
            hs = {**{m: HEADS[m] for m in v[1]}, **hs}
    cidx = {c: i for i, c in enumerate(d.types)}
    y_all = np.array([cidx.get(s, -1) for s in d.labels])
    k = len(d.types)
    for n in ns:
        res: dict[str, list[tuple[float, float, float]]] = {h: [] for h in hs}
        for seed in range(seeds):
            rng = np.random.default_rng(1000 * n + seed)  # same draws as explore.py
            tr, te = ex.sample(d.labels, d.types, n, rng)
            fold = ex.strat_folds(y_all[tr], 5, rng)
            done: dict[str, tuple[Fitted, float]] = {}
            for name, (fit, flip) in hs.items():
                t0 = time.perf_counter()
                if fit == "ens":
                    f = combine([done[m][0] for m in flip], y_all[tr])
                    dt = time.perf_counter() - t0 + sum(done[m][1] for m in flip)
                else:
                    f = fit(d.views(tr, flip), y_all[tr], fold, k)
                    dt = time.perf_counter() - t0
                done[name] = (f, dt)
                z = f.predict(d.base[te])
                acc = float((z.argmax(1) == y_all[te]).mean())
                e = ex.ece(np.exp(ex.log_softmax(z)), y_all[te])
                res[name].append((acc, e, dt))
                log(
                    f"n={n} seed={seed} {name:36s} top1={acc:.3f} ece={e:.3f} "
                    f"t={dt:.2f}s T={f.t:.3f} hp={f.hp}"
                )
        for name in hs:
            r = np.array(res[name])
            log(
                f"SUMMARY n={n} {name:36s} top1={r[:, 0].mean():.3f}±{r[:, 0].std():.3f} "
                f"ece={r[:, 1].mean():.3f} fit={r[:, 2].mean():.2f}s "
                f"per-seed={'/'.join(f'{a:.3f}' for a in r[:, 0])}"
            )


def run_priors(seeds: int = 3) -> None:
    """Unbalanced training sets (n_c uniform in 10..50 per tag); held-out as usual. Top-1
    and balanced accuracy for empirical vs equal priors."""
    d = Data()
    cidx = {c: i for i, c in enumerate(d.types)}
    y_all = np.array([cidx.get(s, -1) for s in d.labels])
    k = len(d.types)
    hs = {"emp": lda_head(), "equal": lda_head(priors="equal")}
    res: dict[str, list[tuple[float, float]]] = {h: [] for h in hs}
    for seed in range(seeds):
        rng = np.random.default_rng(9000 + seed)
        ns = rng.integers(10, 51, k)
        tr = np.concatenate(
            [
                rng.choice(np.flatnonzero(d.labels == c), n, replace=False)
                for c, n in zip(d.types, ns, strict=True)
            ]
        )
        te = np.setdiff1d(np.flatnonzero(y_all >= 0), tr)
        fold = ex.strat_folds(y_all[tr], 5, rng)
        for h, fit in hs.items():
            f = fit(d.views(tr, False), y_all[tr], fold, k)
            p = f.predict(d.base[te]).argmax(1)
            yt = y_all[te]
            bal = float(np.mean([(p[yt == c] == c).mean() for c in range(k)]))
            res[h].append((float((p == yt).mean()), bal))
            log(f"priors seed={seed} {h:6s} top1={res[h][-1][0]:.3f} balacc={bal:.3f} hp={f.hp}")
    for h in hs:
        r = np.array(res[h])
        log(
            f"SUMMARY priors {h:6s} top1={r[:, 0].mean():.3f}±{r[:, 0].std():.3f} "
            f"balacc={r[:, 1].mean():.3f}±{r[:, 1].std():.3f}"
        )


def pseudo_unknown_rounds(
    xv: np.ndarray,
    y: np.ndarray,
    fold: np.ndarray,
    k: int,
    s: float,
    t: float,
    rng: np.random.Generator,
    rounds: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """As explore.pseudo_unknown_oof, with numpy LDA at the chosen shrinkage: 5 rounds
    that leave 2 random tags out of training; their photos are labelled -1."""
    zs, ys = [], []
    for r in range(rounds):
        gone = rng.choice(k, 2, replace=False)
        keep = np.setdiff1d(np.arange(k), gone)
        remap = -np.ones(k, int)
        remap[keep] = np.arange(len(keep))
        f = r % (fold.max() + 1)
        tr = (fold != f) & np.isin(y, keep)
        te = (fold == f) | ~np.isin(y, keep)
        x, yy = _rows(xv[tr], remap[y[tr]])
        z = LDAFactors(x, yy, len(keep)).logits_many(xv[te, 0], (s,))[0]
        full = np.full((te.sum(), k), -1e9)
        full[:, keep] = z / t
        zs.append(full)
        ys.append(np.where(np.isin(y[te], keep), y[te], -1))
    return np.concatenate(zs), np.concatenate(ys)


def own_class_dropped(
    oof: np.ndarray, y: np.ndarray, weight: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Free pseudo-unknowns: every out-of-fold row again, with its own tag's column
    removed (= "this photo's tag is not in the model"), labelled -1."""
    z = oof.copy()
    z[np.arange(len(y)), y] = -1e9
    return np.concatenate([z] * weight), np.full(len(y) * weight, -1)


def run_open(seeds: int = 3, n: int = 30, target: float = 0.9) -> None:
    d = Data()
    fit = lda_head()
    rows: dict[str, list[tuple[float, ...]]] = {}
    for seed in range(seeds):
        rng = np.random.default_rng(77 + seed)  # same known sets / draws as explore.py
        known = sorted(rng.choice(d.types, 10, replace=False).tolist())
        cidx = {c: i for i, c in enumerate(known)}
        y_all = np.array([cidx.get(s, -1) for s in d.labels])
        tr, te = ex.sample(d.labels, known, n, rng)
        fold = ex.strat_folds(y_all[tr], 5, rng)
        xv = d.views(tr, False)
        y = y_all[tr]
        f = fit(xv, y, fold, 10)
        oom = np.flatnonzero(y_all == -1)
        t0 = time.perf_counter()
        zu, yu = pseudo_unknown_rounds(xv, y, fold, 10, f.hp["shrink"], f.t, rng)
        t_pu = time.perf_counter() - t0
        zd, yd = own_class_dropped(f.oof, y)
        variants = {
            "cv": (f.oof, y),
            "cv+pseudo-unknown (5 rounds)": (np.concatenate([f.oof, zu]), np.concatenate([y, yu])),
            "cv+own-tag-dropped": (np.concatenate([f.oof, zd]), np.concatenate([y, yd])),
            "cv+own-tag-dropped x2": (
                np.concatenate([f.oof, *[zd] * 2]),
                np.concatenate([y, *[yd] * 2]),
            ),
        }
        p_in = np.exp(ex.log_softmax(f.predict(d.base[te])))
        p_out = np.exp(ex.log_softmax(f.predict(d.base[oom])))
        for vname, (zo, yo) in variants.items():
            th = ex.thresholds(zo, yo, 10, target)
            tag_in = p_in.max(1) >= th[p_in.argmax(1)]
            tag_out = p_out.max(1) >= th[p_out.argmax(1)]
            correct = tag_in & (p_in.argmax(1) == y_all[te])
            v = (
                float(1 - tag_out.mean()),
                float(correct.sum() / max(tag_in.sum(), 1)),
                float(correct.mean()),
                float(correct.sum() / max(tag_in.sum() + tag_out.sum(), 1)),
            )
            rows.setdefault(vname, []).append(v)
            log(
                f"open seed={seed} {vname:30s} oom_untagged={v[0]:.3f} prec_in={v[1]:.3f} "
                f"rec_in={v[2]:.3f} prec_all={v[3]:.3f} hp={f.hp} pu_time={t_pu:.2f}s "
                f"n_oom={len(oom)}"
            )
    for vname, r in rows.items():
        a = np.array(r)
        mu, sd = a.mean(0), a.std(0)
        log(
            f"SUMMARY open lda-pn {vname:30s} "
            + " ".join(
                f"{k}={m:.3f}±{s:.3f}"
                for k, m, s in zip(
                    ("oom_untagged", "prec_in", "rec_in", "prec_all"), mu, sd, strict=True
                )
            )
        )


def run_timing(tags: int = 50, n: int = 50, reps: int = 3) -> None:
    """Whole fit for 50 tags x 50 examples: CV over the 7 shrinkages (5 folds) + refit +
    temperature + per-tag thresholds (with own-tag-dropped pseudo-unknowns). Synthetic:
    photos drawn with replacement, random tags (as explore.py)."""
    d = Data()
    rng = np.random.default_rng(3)
    tr = rng.choice(len(d.labels), tags * n, replace=True)
    y = np.repeat(np.arange(tags), n)
    fold = ex.strat_folds(y, 5, rng)
    for flip in (False, True):
        if flip and d.flip is None:
            continue
        xv = d.views(tr, flip)
        for r in range(reps):
            t0, c0 = time.perf_counter(), time.process_time()
            f = lda_head()(xv, y, fold, tags)
            t1 = time.perf_counter()
            zd, yd = own_class_dropped(f.oof, y)
            ex.thresholds(np.concatenate([f.oof, zd]), np.concatenate([y, yd]), tags, 0.9)
            t2, c2 = time.perf_counter(), time.process_time()
            log(
                f"timing {tags}x{n} lda-pn 7 shrinkages flip={flip} rep={r}: "
                f"cv+refit+T={t1 - t0:.2f}s thresholds={t2 - t1:.2f}s total={t2 - t0:.2f}s "
                f"cpu={c2 - c0:.2f}s load={os.getloadavg()[0]:.1f} hp={f.hp}"
            )
    # sklearn reference: the same grid, one sklearn fit per (fold, s) + refit
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    x = d.base[tr]
    t0 = time.perf_counter()
    LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.8).fit(x[fold != 0], y[fold != 0])
    one = time.perf_counter() - t0
    log(
        f"timing sklearn lsqr LDA one fit (2000 rows): {one:.2f}s -> 7 s x 5 folds + refit "
        f"~{one * 36:.0f}s"
    )


# --------------------------------------------------------------------------- colour


COLOURS = {  # name -> hue in degrees (None: achromatic recipe)
    "red": 0,
    "orange": 30,
    "yellow": 58,
    "green": 120,
    "cyan": 185,
    "blue": 225,
    "purple": 275,
    "pink": 325,
    "black": None,
    "white": None,
}


def ellipse_mask(
    w: int, h: int, ax: float = 0.42, ay: float = 0.45, feather: float = 0.12
) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.sqrt(((xx + 0.5) / w - 0.5) ** 2 / ax**2 + ((yy + 0.5) / h - 0.5) ** 2 / ay**2)
    return np.clip((1 + feather - r) / feather, 0, 1).astype(np.float32)


def recolour(img: Any, colour: str, rng: np.random.Generator) -> Any:
    """Recolour the garment to a target colour. Garment mask (no segmentation model at
    hand): a soft central ellipse (~60 % of the photo) times a foreground mask (pixels
    more than 60 RGB units from the median colour of the outer 5 % frame, blurred).
    Colours: hue classes set H := hue + U(-10, 10) deg and scale S by U(0.8, 1.2)
    (keeping the garment's shading and pattern); black: V * U(0.12, 0.3), S * 0.5;
    white: S * U(0, 0.12), V := 0.72 + 0.28 V. Outside the ellipse: unchanged."""
    from PIL import Image

    hsv = np.asarray(img.convert("HSV"), np.float32) / 255.0
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    hue = COLOURS[colour]
    if hue is not None:
        h2 = np.full_like(h, ((hue + rng.uniform(-10, 10)) % 360) / 360)
        s2, v2 = np.clip(s * rng.uniform(0.8, 1.2), 0, 1), v
    elif colour == "black":
        h2, s2, v2 = h, s * 0.5, v * rng.uniform(0.12, 0.3)
    else:
        h2, s2, v2 = h, s * rng.uniform(0, 0.12), 0.72 + 0.28 * v
    new = np.stack([h2, s2, v2], -1)
    rgb_new = np.asarray(
        Image.fromarray((new * 255).round().astype(np.uint8), "HSV").convert("RGB"), np.float32
    )
    rgb_old = np.asarray(img, np.float32)
    from PIL import ImageFilter

    w, h = img.size
    bw, bh = max(1, w // 20), max(1, h // 20)
    frame = np.concatenate(
        [
            rgb_old[:bh].reshape(-1, 3),
            rgb_old[-bh:].reshape(-1, 3),
            rgb_old[:, :bw].reshape(-1, 3),
            rgb_old[:, -bw:].reshape(-1, 3),
        ]
    )
    fg = (np.linalg.norm(rgb_old - np.median(frame, 0), axis=-1) > 60).astype(np.uint8) * 255
    fg_soft = np.asarray(Image.fromarray(fg).filter(ImageFilter.GaussianBlur(3)), np.float32) / 255
    m = (ellipse_mask(w, h) * fg_soft)[..., None]
    return Image.fromarray((m * rgb_new + (1 - m) * rgb_old).round().astype(np.uint8), "RGB")


def colour_hist(
    img: Any,
    box: float = 0.6,
    hb: int = 12,
    sb: int = 4,
    vb: int = 0,
    grey: int = 0,
    s_min: float = 0.15,
    side: int = 64,
) -> np.ndarray:
    """Hue-saturation histogram of the central ``box`` fraction (each side) of the photo,
    after a reduce to ``side`` px on the longer side of the box. hb x sb bins (sat in
    [0,1] uniformly), optionally x vb value bins; ``grey`` > 0: pixels with S < s_min go
    to ``grey`` value bins instead of hue bins, and the chromatic part keeps sb bins over
    [s_min, 1]. Returns the sqrt + L2-normalised histogram (Hellinger)."""
    from PIL import Image

    w, h = img.size
    bw, bh = w * box, h * box
    x0, y0 = (w - bw) / 2, (h - bh) / 2
    sc = side / max(bw, bh)
    small = img.resize(
        (max(1, round(bw * sc)), max(1, round(bh * sc))),
        Image.Resampling.BILINEAR,
        box=(x0, y0, x0 + bw, y0 + bh),
        reducing_gap=2.0,
    )
    a = np.asarray(small.convert("HSV"), np.float32).reshape(-1, 3) / 256.0
    hh = np.minimum((a[:, 0] * hb).astype(int), hb - 1)
    vv = np.minimum((a[:, 2] * max(vb, 1)).astype(int), max(vb, 1) - 1)
    if grey:
        chrom = a[:, 1] >= s_min
        ss = np.minimum(((a[:, 1] - s_min) / (1 - s_min) * sb).astype(int), sb - 1)
        idx = (hh * sb + ss) * max(vb, 1) + vv
        gv = np.minimum((a[:, 2] * grey).astype(int), grey - 1)
        n_ch = hb * sb * max(vb, 1)
        idx = np.where(chrom, idx, n_ch + gv)
        hist = np.bincount(idx, minlength=n_ch + grey).astype(np.float64)
    else:
        ss = np.minimum((a[:, 1] * sb).astype(int), sb - 1)
        hist = np.bincount((hh * sb + ss) * max(vb, 1) + vv, minlength=hb * sb * max(vb, 1)).astype(
            np.float64
        )
    hist = np.sqrt(hist / hist.sum())
    return hist / np.linalg.norm(hist)


HISTS: dict[str, dict[str, Any]] = {
    "hs12x4 box.6": {},
    "hs12x4 box.8": {"box": 0.8},
    "hs12x4 box.4": {"box": 0.4},
    "hs12x4 whole": {"box": 1.0},
    "hs12x3+grey4 box.6": {"sb": 3, "grey": 4},
    "hsv12x4x3 box.6": {"vb": 3},
    "hs12x2+grey4 box.6": {"sb": 2, "grey": 4},
    "hs18x3+grey4 box.6": {"hb": 18, "sb": 3, "grey": 4},
    "hs12x3+grey4 box.6 s.10": {"sb": 3, "grey": 4, "s_min": 0.10},
    "hs12x3+grey4 box.6 side32": {"sb": 3, "grey": 4, "side": 32},
}


def recoloured(n_photos: int = 400, per_photo: int = 2) -> Any:
    """Yield (photo index, colour index, recoloured image), deterministic: n_photos
    garment photos with some colour of their own (>= 40 % of the central quarter with
    S >= 0.25 and V >= 0.3), each recoloured into per_photo random distinct colours."""
    from indexer.images import decode

    files, labels, _ = ex.load_labels()
    rng = np.random.default_rng(11)
    cand = rng.permutation(np.flatnonzero(~np.isin(labels, ex.OUT_OF_MODEL)))
    names = list(COLOURS)
    done = 0
    for i in cand:
        if done >= n_photos:
            break
        img = decode((ex.DATA / files[i]).read_bytes(), max_pixels=10**8, min_side=224).image
        hsv = np.asarray(img.convert("HSV").resize((32, 32)), np.float32)[8:24, 8:24] / 255
        if np.mean((hsv[..., 1] >= 0.25) & (hsv[..., 2] >= 0.3)) < 0.4:
            continue
        done += 1
        for c in rng.choice(len(names), per_photo, replace=False):
            yield int(i), int(c), recolour(img, str(names[c]), rng)


def colour_features() -> None:
    """Cache pooled features (plain view) and every histogram variant of the recoloured
    photos."""
    from indexer.embedders import EmbedderOptions, create_embedder

    emb = create_embedder(
        "efficientnet-lite0", EmbedderOptions(models_dir=ex.MODELS, runtime="onnx", threads=2)
    )
    names = list(COLOURS)
    photo, colour, feats, hists = [], [], [], {k: [] for k in HISTS}
    t0 = time.perf_counter()
    batch = []
    for i, c, rc in recoloured():
        if len(photo) < 12:
            rc.save(CACHE / f"colour-sample-{len(photo)}-{names[c]}.jpg")
        photo.append(i)
        colour.append(c)
        batch.append(emb.prepare(rc))
        for k, kw in HISTS.items():
            hists[k].append(colour_hist(rc, **kw))
        if len(batch) >= 32:
            feats.append(emb.embed(batch))
            batch = []
    if batch:
        feats.append(emb.embed(batch))
    np.savez(
        CACHE / "colour.npz",
        photo=np.array(photo),
        colour=np.array(colour),
        feat=np.concatenate(feats),
        **{f"h:{k}": np.array(v) for k, v in hists.items()},
    )
    log(
        f"colour features: {len(set(photo))} photos = {len(photo)} images in "
        f"{time.perf_counter() - t0:.0f}s; colour counts "
        f"{np.bincount(colour, minlength=len(names)).tolist()}"
    )


def colour_hists_extra() -> None:
    """Second round: more histogram variants on the same recoloured photos (regenerated
    deterministically; no embedder)."""
    z = dict(np.load(CACHE / "colour.npz"))
    hists: dict[str, list[np.ndarray]] = {k: [] for k in HISTS2}
    for j, (i, c, rc) in enumerate(recoloured()):
        assert z["photo"][j] == i and z["colour"][j] == c
        for k, kw in HISTS2.items():
            hists[k].append(colour_hist(rc, **kw))
    z.update({f"h:{k}": np.array(v) for k, v in hists.items()})
    np.savez(CACHE / "colour.npz", **z)
    log(f"colour extra histograms: {list(HISTS2)}")


HISTS2: dict[str, dict[str, Any]] = {
    "hs24x3+grey4 box.6": {"hb": 24, "sb": 3, "grey": 4},
    "hs18x2+grey4 box.6": {"hb": 18, "sb": 2, "grey": 4},
    "hs18x3+grey4 box.5": {"hb": 18, "sb": 3, "grey": 4, "box": 0.5},
    "hs18x3x2v+grey4 box.6": {"hb": 18, "sb": 3, "vb": 2, "grey": 4},
    "hs18x3+grey4 box.6 side32": {"hb": 18, "sb": 3, "grey": 4, "side": 32},
}


def run_colour2(ns: tuple[int, ...] = (10, 30), seeds: int = 3) -> None:
    z = np.load(CACHE / "colour.npz")
    vis = ex.FEATS["pn"](z["feat"].astype(np.float64))
    sets: dict[str, np.ndarray] = {
        f"hist {k}": z[f"h:{k}"] for k in (*HISTS2, "hs18x3+grey4 box.6")
    }
    for w in (0.5, 1.0, 2.0):
        for hk in ("hs18x3+grey4 box.6", "hs24x3+grey4 box.6"):
            sets[f"pn + {w}*hist {hk}"] = np.hstack([vis, w * z[f"h:{hk}"]])
    run_colour(ns, seeds, sets, "colour2")


def run_colour3(ns: tuple[int, ...] = (10, 30), seeds: int = 3) -> None:
    """Round 3: the histogram with 2 value bins concatenated to the visual features."""
    z = np.load(CACHE / "colour.npz")
    vis = ex.FEATS["pn"](z["feat"].astype(np.float64))
    hk = "hs18x3x2v+grey4 box.6"
    sets = {f"pn + {w}*hist {hk}": np.hstack([vis, w * z[f"h:{hk}"]]) for w in (0.5, 1.0)}
    run_colour(ns, seeds, sets, "colour3")


def run_colour(
    ns: tuple[int, ...] = (10, 30),
    seeds: int = 3,
    sets: dict[str, np.ndarray] | None = None,
    tag: str = "colour",
) -> None:
    z = np.load(CACHE / "colour.npz")
    photo, y_all, vis = z["photo"], z["colour"], ex.FEATS["pn"](z["feat"].astype(np.float64))
    k = len(COLOURS)
    fit = lda_head()
    if sets is None:  # round 1
        sets = {"visual pn": vis, **{f"hist {hk}": z[f"h:{hk}"] for hk in HISTS}}
        for w in (0.5, 1.0, 2.0, 4.0):
            sets[f"pn + {w}*hist hs12x3+grey4 box.6"] = np.hstack(
                [vis, w * z["h:hs12x3+grey4 box.6"]]
            )
        sets["pn + 2*hist hs12x4 box.6"] = np.hstack([vis, 2.0 * z["h:hs12x4 box.6"]])
    for n in ns:
        res: dict[str, list[float]] = {s: [] for s in sets}
        for seed in range(seeds):
            rng = np.random.default_rng(500 + 10 * n + seed)
            ph = np.unique(photo)
            train_ph = rng.permutation(ph)[: len(ph) // 2]  # photos split: no photo on both sides
            pool = np.isin(photo, train_ph)
            tr = np.concatenate(
                [
                    rng.choice(np.flatnonzero(pool & (y_all == c)), n, replace=False)
                    for c in range(k)
                ]
            )
            te = np.flatnonzero(~pool)
            fold = ex.strat_folds(y_all[tr], 5, rng)
            for name, x in sets.items():
                f = fit(x[tr, None, :], y_all[tr], fold, k)
                acc = float((f.predict(x[te]).argmax(1) == y_all[te]).mean())
                res[name].append(acc)
                log(f"{tag} n={n} seed={seed} {name:40s} top1={acc:.3f} hp={f.hp}")
        for name, r in res.items():
            log(f"SUMMARY {tag} n={n} {name:40s} top1={np.mean(r):.3f}±{np.std(r):.3f}")


def hist_cost(reps: int = 200) -> None:
    from indexer.images import decode

    files, _, _ = ex.load_labels()
    img = decode((ex.DATA / files[0]).read_bytes(), max_pixels=10**8).image
    img.load()
    allh = {**HISTS, **HISTS2}
    for name in (
        "hs12x4 box.6",
        "hs24x3+grey4 box.6",
        "hs18x3x2v+grey4 box.6",
        "hs18x3+grey4 box.6 side32",
    ):
        colour_hist(img, **allh[name])
        t0 = time.perf_counter()
        for _ in range(reps):
            colour_hist(img, **allh[name])
        log(
            f"histcost {name} on {img.size}: {(time.perf_counter() - t0) / reps * 1e3:.2f} ms/image"
        )


if __name__ == "__main__":
    import torch

    torch.set_num_threads(2)
    cmd = sys.argv[1] if len(sys.argv) > 1 else "closed"
    arg = sys.argv[2].split(";") if len(sys.argv) > 2 else None  # head names contain commas
    {
        "check": check,
        "flip": extract_flip,
        "closed": lambda: run_closed(arg),
        "priors": run_priors,
        "timing": run_timing,
        "open": run_open,
        "colour-features": colour_features,
        "colour": run_colour,
        "colour-hists": colour_hists_extra,
        "colour2": run_colour2,
        "colour3": run_colour3,
        "histcost": hist_cost,
    }[cmd]()
