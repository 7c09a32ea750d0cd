"""Adapted text encoder: fine-tune the encoder jointly with propensity and outcome heads.

In the spirit of CausalBERT (Veitch, Sridhar & Blei 2020, "Adapting text embeddings
for causal inference"): one shared encoder ``phi`` (any local Hugging Face model,
MiniLM by default) produces a text representation ``z = meanpool(phi(text))``;
three small heads read ``[z, covariates]``:

    g(z)  = P(T = 1 | text)          (propensity head, logistic)
    Q0(z) = E[Y | T = 0, text]       (outcome head for the untreated)
    Q1(z) = E[Y | T = 1, text]       (outcome head for the treated)

trained on the joint loss (weights ``w_i``)::

    L = sum_i w_i [ alpha * CE(T_i, g(z_i)) + beta * l(Y_i, Q_{T_i}(z_i)) ] / sum_i w_i

with ``l`` squared error on the standardised outcome (or binary cross-entropy for
0/1 outcomes). Fine-tuning lets the representation keep what predicts treatment
and outcome, when fixed embeddings blur the confounder. The masked-language-model
term of the paper is left out (it regularises with unlabeled text; our logs are
labelled throughout). The fitted ``e_hat, mu0, mu1`` plug into AIPW/DML; use
``cross_fit_adapted`` for out-of-fold nuisances. Propensities are Platt-calibrated
on a held-out split and clipped, as for ``PropensityModel``.

Assumptions: no unmeasured confounding given the text (and covariates), overlap.
Cost: a forward and backward pass of the encoder per row and epoch: minutes for
thousands of rows with MiniLM on a CPU; meant for small data on CPU, GPU otherwise.
Text pairs (user history, item title) are encoded as one sequence pair.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator

from causalrec.errors import InputError
from causalrec.models.calibration import clip_propensity, fit_platt


@dataclass
class AdaptedPredictions:
    """Nuisance predictions for each row: propensity ``e_hat`` = P(T=1), outcomes ``mu0``, ``mu1``."""

    e_hat: np.ndarray
    mu0: np.ndarray
    mu1: np.ndarray

    def as_dict(self) -> dict:
        return {"e_hat": self.e_hat, "mu0": self.mu0, "mu1": self.mu1}


def _texts(values, name: str, n: int | None = None) -> list[str]:
    arr = list(values.tolist() if hasattr(values, "tolist") else values)
    if n is not None and len(arr) != n:
        raise InputError(f"{name} has {len(arr)} entries, expected {n}", column=name)
    bad = [v for v in arr if not isinstance(v, str)]
    if bad:
        raise InputError(f"{name} must hold strings ({len(bad)} value(s) are not, e.g. {bad[0]!r})",
                         column=name, fix="fill missing texts with '' and convert with .astype(str)")
    return arr


class AdaptedTextModel(BaseEstimator):
    """Shared text encoder fine-tuned with a propensity head and two outcome heads.

    Parameters
    ----------
    encoder:
        Local Hugging Face model folder; ``None`` uses the packaged all-MiniLM-L6-v2.
    max_length, batch_size, epochs:
        Tokens per text (pair), rows per step, passes over the data.
    learning_rate, head_learning_rate, weight_decay:
        AdamW rates for the encoder and for the heads.
    head_hidden:
        Width of each head's hidden layer.
    alpha, beta:
        Weights of the propensity and outcome losses.
    outcome_loss:
        ``"auto"`` (``"bce"`` for 0/1 outcomes, else ``"mse"``), ``"mse"`` or ``"bce"``.
    calibration_fraction:
        Rows held out (never trained on) to Platt-calibrate the propensity head; 0 disables.
    clip:
        Propensities are clipped to ``[clip, 1 - clip]``.
    device, random_state, progress, num_threads:
        ``"auto"`` uses CUDA when visible; seeded; tqdm bar (``None``: on a terminal);
        torch CPU threads (``None``: 1 for tiny encoders, else torch's setting).
    """

    def __init__(self, encoder=None, max_length: int = 64, batch_size: int = 32, epochs: int = 2,
                 learning_rate: float = 3e-5, head_learning_rate: float = 1e-3,
                 weight_decay: float = 0.01, head_hidden: int = 64, alpha: float = 1.0,
                 beta: float = 1.0, outcome_loss: str = "auto", calibration_fraction: float = 0.1,
                 clip: float | None = 0.01, device: str = "auto", random_state: int | None = 0,
                 progress: bool | None = None, num_threads: int | None = None):
        self.encoder = encoder
        self.max_length = max_length
        self.batch_size = batch_size
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.head_learning_rate = head_learning_rate
        self.weight_decay = weight_decay
        self.head_hidden = head_hidden
        self.alpha = alpha
        self.beta = beta
        self.outcome_loss = outcome_loss
        self.calibration_fraction = calibration_fraction
        self.clip = clip
        self.device = device
        self.random_state = random_state
        self.progress = progress
        self.num_threads = num_threads

    # --- building blocks ---------------------------------------------------------
    def _model_path(self):
        from pathlib import Path

        from causalrec.features.embedder import default_model_path

        path = default_model_path() if self.encoder is None else Path(self.encoder)
        if not (path / "config.json").is_file():
            raise InputError(f"'{path}' is not a local Hugging Face model folder", column="encoder",
                             fix="pass a folder saved with save_pretrained() (nothing is downloaded)")
        return path

    def _tokenize(self, texts, pair):
        return self.tokenizer_(texts, pair, truncation=True, max_length=int(self.max_length),
                               padding=False)

    def _batch(self, enc, idx, dev):
        keys = list(enc.keys())
        batch = self.tokenizer_.pad([{k: enc[k][i] for k in keys} for i in idx], padding=True,
                                    return_tensors="pt")
        return {k: v.to(dev) for k, v in batch.items()}

    def _represent(self, batch):
        hidden = self.encoder_(**batch).last_hidden_state
        m = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)

    def _heads_out(self, z, cov):
        h = z if cov is None else self._torch.cat([z, cov], dim=1)
        return self.heads_["g"](h)[:, 0], self.heads_["q0"](h)[:, 0], self.heads_["q1"](h)[:, 0]

    @property
    def _torch(self):
        import torch

        return torch

    def _threads(self, hidden_size: int) -> int:
        import torch

        if self.num_threads is not None:
            return max(1, int(self.num_threads))
        return 1 if hidden_size <= 64 else torch.get_num_threads()

    def _cov(self, covariates, n, fit: bool):
        if covariates is None:
            if fit:
                self.cov_mean_ = None
            elif self.cov_mean_ is not None:
                raise InputError("the model was fitted with covariates; pass them to predict too",
                                 column="covariates")
            return None
        c = np.asarray(covariates, dtype=np.float64)
        c = c[:, None] if c.ndim == 1 else c
        if c.shape[0] != n or not np.isfinite(c).all():
            raise InputError(f"covariates must be a finite ({n}, k) numeric array", column="covariates",
                             fix="encode DataFrames with causalrec.features.encode_tabular")
        if fit:
            self.cov_mean_ = c.mean(0)
            sd = c.std(0)
            self.cov_scale_ = np.where(sd > 1e-8, sd, 1.0)
        elif self.cov_mean_ is None or c.shape[1] != len(self.cov_mean_):
            raise InputError("covariates do not match those seen in fit", column="covariates")
        return ((c - self.cov_mean_) / self.cov_scale_).astype(np.float32)

    # --- fit -----------------------------------------------------------------------
    def fit(self, texts, t, y, *, text_pair=None, covariates=None, sample_weight=None):
        """Fine-tune on row texts (and optional second texts), binary treatment ``t`` and outcome ``y``."""
        import torch

        from causalrec.features.device import resolve_device
        from causalrec.features.embedder import _offline_env
        from causalrec.features.quiet import quiet_transformers

        texts = _texts(texts, "texts")
        n = len(texts)
        pair = _texts(text_pair, "text_pair", n) if text_pair is not None else None
        t = np.asarray(t)
        y = np.asarray(y, dtype=np.float64)
        if t.shape != (n,) or y.shape != (n,):
            raise InputError(f"t and y must be 1-D with {n} entries", column="treatment")
        if not np.isin(t, [0, 1]).all() or len(np.unique(t)) < 2:
            raise InputError("the adapted model needs a binary 0/1 treatment with both values present",
                             column="treatment", fix="encode the treatment as 0/1")
        if not np.isfinite(y).all():
            raise InputError("the outcome has missing or infinite values", column="outcome")
        w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if w.shape != (n,) or (w < 0).any() or w.sum() <= 0:
            raise InputError("sample_weight must be non-negative, one per row", column="sample_weight")
        cov = self._cov(covariates, n, fit=True)
        loss_kind = self.outcome_loss
        if loss_kind == "auto":
            loss_kind = "bce" if np.isin(y, [0.0, 1.0]).all() else "mse"
        if loss_kind not in ("mse", "bce"):
            raise InputError(f"unknown outcome_loss {self.outcome_loss!r}", column="outcome_loss",
                             fix="use 'auto', 'mse' or 'bce'")
        if loss_kind == "bce" and (y.min() < 0 or y.max() > 1):
            raise InputError("outcome_loss='bce' needs outcomes in [0, 1]", column="outcome")
        self.outcome_loss_ = loss_kind
        self.y_mean_, self.y_scale_ = (0.0, 1.0) if loss_kind == "bce" else (
            float(y.mean()), float(y.std()) if y.std() > 1e-12 else 1.0)
        seed = int(self.random_state) if self.random_state is not None else int(
            np.random.default_rng().integers(2**31 - 1))
        rng = np.random.default_rng(seed)
        idx = rng.permutation(n)
        n_cal = int(round(self.calibration_fraction * n)) if self.calibration_fraction else 0
        if n_cal < 10 or len(np.unique(t[idx[:n_cal]])) < 2:
            n_cal = 0
        cal, tr = np.sort(idx[:n_cal]), idx[n_cal:]

        _offline_env()
        path = self._model_path()
        import transformers

        self.device_ = resolve_device(self.device)
        dev = torch.device(self.device_)
        with quiet_transformers():
            self.tokenizer_ = transformers.AutoTokenizer.from_pretrained(
                str(path), local_files_only=True, trust_remote_code=False)
            encoder = transformers.AutoModel.from_pretrained(
                str(path), local_files_only=True, trust_remote_code=False, dtype=torch.float32)
        d = int(encoder.config.hidden_size)
        k = 0 if cov is None else cov.shape[1]
        old_threads = torch.get_num_threads()
        threads = self._threads(d) if dev.type == "cpu" else old_threads
        fork = [dev.index or 0] if dev.type == "cuda" else []
        try:
            torch.set_num_threads(threads)
            with torch.random.fork_rng(devices=fork):
                torch.manual_seed(seed)
                nn = torch.nn

                def head():
                    return nn.Sequential(nn.Linear(d + k, int(self.head_hidden)), nn.ReLU(),
                                         nn.Linear(int(self.head_hidden), 1))

                self.encoder_ = encoder.to(dev)
                self.heads_ = nn.ModuleDict({"g": head(), "q0": head(), "q1": head()}).to(dev)
                self._train(texts, pair, t, y, w, cov, tr, dev, seed)
                self.encoder_.eval()
                self.heads_.eval()
                self.calibration_params_ = None
                if n_cal:
                    g, _, _ = self._raw_predict([texts[i] for i in cal],
                                                [pair[i] for i in cal] if pair else None,
                                                cov[cal] if cov is not None else None)
                    a, b = fit_platt(g, t[cal].astype(float), w[cal])
                    self.calibration_params_ = {"a": a, "b": b}
        finally:
            torch.set_num_threads(old_threads)
        self.n_train_, self.n_calibration_ = len(tr), n_cal
        self.clip_ = float(self.clip) if self.clip else 0.0
        self.n_features_in_ = k
        return self

    def _train(self, texts, pair, t, y, w, cov, tr, dev, seed):
        import torch
        import torch.nn.functional as F
        from tqdm.auto import tqdm

        enc = self._tokenize(texts, pair)
        tt = torch.from_numpy(t.astype(np.float32)).to(dev)
        ys = torch.from_numpy(((y - self.y_mean_) / self.y_scale_).astype(np.float32)).to(dev)
        ww = torch.from_numpy((w / w.mean()).astype(np.float32)).to(dev)
        cv = torch.from_numpy(cov).to(dev) if cov is not None else None
        opt = torch.optim.AdamW([
            {"params": self.encoder_.parameters(), "lr": self.learning_rate},
            {"params": self.heads_.parameters(), "lr": self.head_learning_rate}],
            weight_decay=self.weight_decay)
        bs = max(1, int(self.batch_size))
        rng = np.random.default_rng(seed + 1)
        steps = int(self.epochs) * int(np.ceil(len(tr) / bs))
        show = self.progress if self.progress is not None else (steps > 200 and sys.stderr.isatty())
        bar = tqdm(total=steps, desc="fine-tuning", unit="step", disable=not show)
        self.loss_curve_ = []
        for _ in range(int(self.epochs)):
            self.encoder_.train()
            self.heads_.train()
            order = rng.permutation(tr)
            total, count = 0.0, 0
            for s in range(0, len(order), bs):
                b = order[s: s + bs]
                bt = torch.from_numpy(b).to(dev)
                z = self._represent(self._batch(enc, b, dev))
                g, q0, q1 = self._heads_out(z, cv[bt] if cv is not None else None)
                tb, yb, wb = tt[bt], ys[bt], ww[bt]
                q = torch.where(tb > 0.5, q1, q0)
                lt = F.binary_cross_entropy_with_logits(g, tb, reduction="none")
                ly = (F.binary_cross_entropy_with_logits(q, yb, reduction="none")
                      if self.outcome_loss_ == "bce" else (q - yb) ** 2)
                loss = ((self.alpha * lt + self.beta * ly) * wb).sum() / wb.sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(b)
                count += len(b)
                bar.update(1)
            self.loss_curve_.append(total / max(count, 1))
        bar.close()

    # --- predict -------------------------------------------------------------------
    def _device(self):
        import torch

        dev = getattr(self, "device_", "cpu")
        if str(dev).startswith("cuda") and not torch.cuda.is_available():
            dev = "cpu"
        return torch.device(dev)

    def _raw_predict(self, texts, pair, cov, want_embedding: bool = False):
        import torch

        dev = self._device()
        self.encoder_.to(dev)
        self.heads_.to(dev)
        enc = self._tokenize(texts, pair)
        lengths = np.array([len(x) for x in enc["input_ids"]])
        order = np.argsort(-lengths, kind="stable")
        n = len(texts)
        g, q0, q1 = np.empty(n), np.empty(n), np.empty(n)
        emb = np.empty((n, int(self.encoder_.config.hidden_size)), dtype=np.float32) if want_embedding else None
        cv = torch.from_numpy(cov).to(dev) if cov is not None else None
        bs = max(1, int(self.batch_size)) * 2
        with torch.inference_mode():
            for s in range(0, n, bs):
                b = order[s: s + bs]
                z = self._represent(self._batch(enc, b, dev))
                if want_embedding:
                    emb[b] = torch.nn.functional.normalize(z.float(), dim=1).cpu().numpy()
                    continue
                bg, b0, b1 = self._heads_out(z, cv[torch.from_numpy(b).to(dev)] if cv is not None else None)
                g[b], q0[b], q1[b] = bg.cpu().numpy(), b0.cpu().numpy(), b1.cpu().numpy()
        return emb if want_embedding else (g, q0, q1)

    def _check_fitted(self):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "heads_")

    def predict(self, texts, *, text_pair=None, covariates=None) -> AdaptedPredictions:
        """Calibrated, clipped ``e_hat`` and outcome predictions ``mu0``, ``mu1`` for each row."""
        import torch

        self._check_fitted()
        texts = _texts(texts, "texts")
        pair = _texts(text_pair, "text_pair", len(texts)) if text_pair is not None else None
        cov = self._cov(covariates, len(texts), fit=False)
        old = torch.get_num_threads()
        try:
            torch.set_num_threads(self._threads(int(self.encoder_.config.hidden_size)))
            g, q0, q1 = self._raw_predict(texts, pair, cov)
        finally:
            torch.set_num_threads(old)
        if self.calibration_params_:
            g = self.calibration_params_["a"] * g + self.calibration_params_["b"]
        e = clip_propensity(1.0 / (1.0 + np.exp(-g)), self.clip_)[0]
        if self.outcome_loss_ == "bce":
            mu0, mu1 = 1.0 / (1.0 + np.exp(-q0)), 1.0 / (1.0 + np.exp(-q1))
        else:
            mu0, mu1 = q0 * self.y_scale_ + self.y_mean_, q1 * self.y_scale_ + self.y_mean_
        return AdaptedPredictions(e_hat=e, mu0=mu0, mu1=mu1)

    def embed(self, texts, *, text_pair=None) -> np.ndarray:
        """L2-normalised mean-pooled vectors from the fine-tuned encoder (float32, (n, d))."""
        self._check_fitted()
        texts = _texts(texts, "texts")
        pair = _texts(text_pair, "text_pair", len(texts)) if text_pair is not None else None
        return self._raw_predict(texts, pair, None, want_embedding=True)

    def __getstate__(self):
        state = dict(self.__dict__)
        for key in ("encoder_", "heads_"):
            if key in state:
                state[key] = copy.deepcopy(state[key]).cpu()
        return state


class AdaptedSpec:
    """The cross-fitting engine's spec for the adapted encoder: one ``AdaptedTextModel`` per
    fold, nuisances ``e``, ``mu0``, ``mu1``. ``data``: ``texts``, ``text_pair``, ``covariates``,
    ``t``, ``y``, ``sample_weight`` (entries may be ``None``)."""

    names = ("e", "mu0", "mu1")

    def __init__(self, **params):
        self.params = params

    def fit(self, data, train):
        from causalrec.models.crossfit import take

        d = take(data, train)
        return AdaptedTextModel(**self.params).fit(d["texts"], d["t"], d["y"], text_pair=d["text_pair"],
                                                   covariates=d["covariates"], sample_weight=d["sample_weight"])

    def predict(self, model, data, rows):
        from causalrec.models.crossfit import take

        d = take(data, rows)
        p = model.predict(d["texts"], text_pair=d["text_pair"], covariates=d["covariates"])
        return {"e": {"adapted": p.e_hat}, "mu0": {"adapted": p.mu0}, "mu1": {"adapted": p.mu1}}


def cross_fit_adapted(texts, t, y, *, text_pair=None, covariates=None, sample_weight=None,
                      n_folds: int = 5, groups=None, random_state: int = 0, folds=None,
                      return_folds: bool = False, **params):
    """Out-of-fold ``AdaptedPredictions``: fine-tune on K-1 folds, predict the held-out fold,
    through the cross-fitting engine (:func:`causalrec.models.crossfit.cross_fit` with
    :class:`AdaptedSpec`).

    Folds come from ``make_folds`` (grouped by ``groups``, stratified by ``t``); ``params``
    go to ``AdaptedTextModel``.
    """
    from causalrec.models.crossfit import cross_fit
    from causalrec.models.folds import make_folds

    texts = _texts(texts, "texts")
    n = len(texts)
    pair = _texts(text_pair, "text_pair", n) if text_pair is not None else None
    t, y = np.asarray(t), np.asarray(y, dtype=np.float64)
    cov = None if covariates is None else np.asarray(covariates, dtype=np.float64)
    sw = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if folds is None:
        folds = make_folds(n, n_folds, groups=groups, stratify=t, random_state=random_state)
    params.setdefault("random_state", random_state)
    data = {"texts": texts, "text_pair": pair, "covariates": cov, "t": t, "y": y, "sample_weight": sw}
    cf = cross_fit(AdaptedSpec(**params), data, folds)
    pred = AdaptedPredictions(e_hat=cf["e"], mu0=cf["mu0"], mu1=cf["mu1"])
    return (pred, cf.folds) if return_folds else pred


__all__ = ["AdaptedTextModel", "AdaptedPredictions", "AdaptedSpec", "cross_fit_adapted"]
