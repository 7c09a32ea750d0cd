"""``estimate``: the effect of exposure on an outcome from logs, adjusting through text.

Pipeline (one call, every step seeded):

1. validate the log at the boundary (binary treatment, numeric outcome);
2. build the adjustment set ``X`` (``features``):

   * ``"text"``: ``[u, i, u * i, covariates]`` with ``u``/``i`` the
     :class:`~causalrec.features.TextEmbedder` vectors of the user text and the
     item text (the latter from the log or joined from an item catalogue), each
     unique string embedded once;
   * ``"ids"``: one-hot user and item identifiers (+ covariates): what an
     analyst without text would adjust for;
   * ``"covariates"``: tabular covariates only;
   * an array: used as is (+ covariates), e.g. precomputed embeddings;
3. cross-fit the nuisances ONCE with the engine (:func:`causalrec.models.cross_fit`,
   ``n_folds`` folds, grouped by user when a user column exists, so a user's
   rows never sit on both sides of a split): ``e(X)`` from the propensity model
   and ``mu_t(X)`` from the outcome model trained on arm ``t`` only; candidate
   models (lists) are chosen by cross-fitted loss (``diagnostics["nuisance_models"]``).
   AIPW, IPW and DML (econml's final stage through ``Precomputed*``) share them;
4. clip ``e`` to ``[clip, 1 - clip]`` (the estimand stays the ATE over all rows;
   the share of clipped rows is reported) and optionally trim rows with
   ``e`` outside ``[trim, 1 - trim]`` (Crump et al. 2009; the estimand becomes
   the effect on the overlap population, which the result states);
5. run the estimators of :mod:`causalrec.uplift.ate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from causalrec.data.readers import read_table
from causalrec.data.schema import LogSchema
from causalrec.data.validation import check_columns_named, validate_log
from causalrec.diagnostics.overlap import clip_warning
from causalrec.diagnostics.overlap import share_clipped as clipped_share
from causalrec.diagnostics.tails import row_list
from causalrec.errors import InputError
from causalrec.uplift import ate as ate_mod
from causalrec.uplift.result import UpliftResult

FEATURE_KINDS = ("auto", "text", "ids", "covariates")
#: ``k`` tried by ``text_clusters="loss"`` (see :func:`select_clusters_by_propensity_loss`)
CLUSTER_CANDIDATES = (6, 7, 8, 9, 10, 12, 16)
#: KMeans restarts per candidate under ``text_clusters="loss"``
CLUSTER_RESTARTS = 20


def select_clusters_by_propensity_loss(designs: dict[int, np.ndarray], t: np.ndarray, folds: np.ndarray,
                                       ) -> tuple[int, dict[str, Any]]:
    """The cluster count whose design best predicts the treatment out of fold.

    For every candidate ``k`` a standardised L2 logistic regression (``C = 1``) of ``T`` on
    ``X_k`` is cross-fitted by the one engine (:func:`causalrec.models.cross_fit`, the
    ``folds`` the nuisances use) and ``k* = argmin_k`` of its out-of-fold log loss
    ``-mean(T log e_k + (1 - T) log(1 - e_k))``. Why: the confounder acts on ``T``; a
    representation that loses part of it predicts ``T`` worse. Label-free choices are not
    tied to it: on the simulator (20,000 rows, 8 topics) the silhouette picked 6 clusters
    on 2 of 20 seeds, where the AIPW error doubled to triple, and KMeans's 8-cluster
    solution on other seeds explained 0.81 instead of 0.93 of the text confounder's
    variance; on those seeds the log loss was lowest for the ``k`` with the highest
    share (measured on seeds 11, 17, 300, 301 for ``k`` in 6..10). Assumption: a
    handful of candidates, so choosing one by its out-of-fold loss on all rows leaves the
    cross-fitting of the nuisances that follow (same folds) essentially intact.
    Returns ``(k*, {"criterion", "chosen", "losses": {k: loss}})``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from causalrec.models import cross_fit
    from causalrec.models.crossfit import SingleModel

    losses: dict[int, float] = {}
    for k, X in designs.items():  # one design per candidate: each its own engine call on the same folds
        spec = SingleModel(make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)),
                           name="e", method="predict_proba", classes=np.array([0, 1]))
        cf = cross_fit(spec, {"X": X, "y": t}, folds)
        losses[int(k)] = float(cf.selection["e"]["loss"])
    best = min(losses, key=losses.get)
    return best, {"criterion": "cross-fitted log loss of a logistic propensity on each design (the nuisance folds)",
                  "chosen": best, "losses": losses}


def _catalog_text(canon: pd.DataFrame, items: Any, item_key: str | None, item_text: str) -> pd.Series:
    """Item text for each log row, joined from an item catalogue on ``item_key``."""
    cat = read_table(items)
    key = item_key or "item_id"
    for col, what in ((key, "item key"), (item_text, "item text")):
        if col not in cat.columns:
            raise InputError(f"the item catalogue has no column '{col}' ({what}); columns: {list(cat.columns)[:12]}",
                             column=col, fix="pass --item-key / --item-text naming catalogue columns")
    if "item_id" not in canon.columns:
        raise InputError("joining an item catalogue needs the log's item id column", column="item_id",
                         fix="map the item id role (schema.item_id) to a log column")
    if cat[key].duplicated().any():
        dup = cat.loc[cat[key].duplicated(), key].iloc[0]
        raise InputError(f"the item catalogue has duplicated keys in '{key}' (e.g. {dup!r})", column=key,
                         fix="keep one row per item in the catalogue")
    lookup = pd.Series(cat[item_text].to_numpy(), index=cat[key].astype(str).to_numpy())
    ids = canon["item_id"].astype(str)
    text = ids.map(lookup)
    missing = text.isna()
    if missing.any():
        raise InputError(f"{int(missing.sum())} log rows have items missing from the catalogue "
                         f"(e.g. {ids[missing].iloc[0]!r})", column=key,
                         fix="add those items to the catalogue or drop their rows")
    return text.astype(str).reset_index(drop=True)


def _text_column(canon: pd.DataFrame, role: str) -> pd.Series:
    s = canon[role]
    if s.isna().any():
        raise InputError(f"the {role.replace('_', ' ')} column has {int(s.isna().sum())} missing values",
                         column=role, fix="fill them with an empty string or a placeholder text")
    return s.astype(str)


def build_features(
    canon: pd.DataFrame,
    *,
    features: str | np.ndarray = "auto",
    covariates: Sequence[str] = (),
    items: Any = None,
    item_key: str | None = None,
    item_text: str | None = None,
    embedder: Any = None,
    model: str | None = None,
    device: str = "auto",
    progress: bool | None = None,
    history: Any = None,
    history_sep: str | None = None,
    history_pooling: str = "mean",
    text_components: int | None = None,
    text_clusters: int | str | None = None,
    text_interaction: str = "product",
    seed: int = 0,
    text_cluster_weights: str = "mixture",
    cluster_selector: Any = None,
) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """The adjustment matrix ``X`` for a canonical log (see module docstring).

    ``history``: the values of a user-history column (lists of item texts/ids, or
    strings split on ``history_sep``); the user vector ``u`` is then the pooled
    item embeddings (:mod:`causalrec.features.history`, ``history_pooling`` mean
    or attention) and a user-text embedding, when given too, joins the covariates.
    ``text_components``: project ``u`` and ``v`` on the leading principal components
    of the unique item vectors (:func:`causalrec.features.history.item_components`).
    ``text_clusters`` (an int or ``"auto"``): replace ``u`` and ``v`` by soft topic
    memberships (:func:`causalrec.features.history.topic_clusters`); ``text_cluster_weights``
    ``"soft"`` (softmax of distances) or ``"mixture"`` (simplex least-squares topic proportions,
    :meth:`~causalrec.features.history.TopicClusters.mixture_weights`). ``text_clusters="loss"``:
    the design is built for every ``k`` in :data:`CLUSTER_CANDIDATES` (KMeans with
    :data:`CLUSTER_RESTARTS` restarts) and ``cluster_selector``
    (``{k: X_k} -> (k, report)``, see :func:`select_clusters_by_propensity_loss`) picks one;
    it needs the treatment, so only :func:`estimate` passes it.
    ``text_interaction``: ``"product"`` (``u * v``) or ``"outer"`` (every ``u_j v_l``; see
    :func:`causalrec.features.design_matrix`).
    """
    from causalrec.features import design_matrix

    info: dict[str, Any] = {}
    cov = canon[list(covariates)] if covariates else None
    has_user_text = "user_text" in canon.columns or history is not None
    has_item_text = "item_text" in canon.columns or items is not None
    kind = features if isinstance(features, str) else "array"
    if kind == "auto":
        kind = "text" if (has_user_text or has_item_text) else "covariates"
    info["features"] = kind
    if kind == "array":
        arr = np.asarray(features, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.shape[0] != len(canon):
            raise InputError(f"the feature array has {arr.shape[0]} rows but the log has {len(canon)}",
                             column="features", fix="pass one feature row per log row")
        if not np.isfinite(arr).all():
            raise InputError("the feature array has NaN or infinite values", column="features",
                             fix="impute or drop them")
        names = [f"x{j}" for j in range(arr.shape[1])]
        if cov is not None:
            c, cn = design_matrix(covariates=cov, return_names=True)
            return np.hstack([arr, c]).astype(np.float32), names + cn, info
        return arr, names, info
    if kind == "text":
        if not (has_user_text or has_item_text):
            raise InputError("features='text' needs a user text or an item text column", column="user_text",
                             fix="pass --user-text COL and/or --item-text COL (or --items CATALOG --item-text COL)")
        if embedder is None:
            from causalrec.features import TextEmbedder

            embedder = TextEmbedder(model=model, device=device, progress=progress)
        joined = embedder.encode_column(_text_column(canon, "user_text")) if "user_text" in canon.columns else None
        u, hist, hist_vecs = joined, None, None
        if history is not None:
            from causalrec.features.history import encode_history, mean_pool

            if history_pooling not in ("mean", "attention"):
                raise InputError(f"unknown history pooling {history_pooling!r}", column="history_pooling",
                                 fix="use 'mean' or 'attention'")
            lookup = None
            if items is not None and item_text is not None:
                cat = read_table(items)
                key = item_key or "item_id"
                if key in cat.columns and item_text in cat.columns:
                    lookup = pd.Series(cat[item_text].astype(str).to_numpy(), index=cat[key].astype(str).to_numpy())
            hist, hist_vecs = encode_history(history, embedder, sep=history_sep,
                                             column=str(getattr(history, "name", None) or "user_history"),
                                             item_lookup=lookup)
            u = mean_pool(hist, hist_vecs)
            info["user_representation"] = f"history ({history_pooling} of {len(hist.texts)} unique item embeddings)"
            info["history_unique_items"] = int(len(hist.texts))
            info["history_empty_rows"] = int((hist.lengths == 0).sum())
        if items is not None:
            if item_text is None:
                raise InputError("an item catalogue needs the name of its text column", column="item_text",
                                 fix="pass --item-text COL naming the catalogue's text column")
            it = _catalog_text(canon, items, item_key, item_text)
        else:
            it = _text_column(canon, "item_text") if has_item_text else None
        v = embedder.encode_column(it) if it is not None else None
        if text_components:
            from causalrec.features.history import item_components

            basis = [b for b in (hist_vecs, None if v is None else np.unique(v, axis=0)) if b is not None]
            if not basis:
                raise InputError("text_components needs item vectors (a history or item text)",
                                 column="text_components", fix="give --user-history or --item-text")
            pca = item_components(np.vstack(basis), int(text_components), seed)
            hist_vecs = pca.transform(hist_vecs).astype(np.float32) if hist_vecs is not None else None
            v = pca.transform(v).astype(np.float32) if v is not None else None
            joined = pca.transform(joined).astype(np.float32) if joined is not None else None
            if hist is not None:
                u = mean_pool(hist, hist_vecs)
            else:
                u = joined
            info["text_components"] = int(pca.n_components_)
            info["text_components_variance"] = float(pca.explained_variance_ratio_.sum())
        base = (u, v, joined, hist_vecs)
        # "loss" compares the k's by a supervised loss, so each k needs its best KMeans solution: with
        # 4 restarts the 8-cluster fit on simulator seeds 17 and 302 was a poor local optimum (out-of-fold
        # propensity log loss 0.5877 / 0.5945 against 0.5742 / 0.5790 with 20; AIPW error +0.031 / +0.032
        # against +0.021 / +0.021; 50 restarts changed neither). k / "auto" keep 4 (earlier results).
        cluster_restarts = CLUSTER_RESTARTS if text_clusters == "loss" else 4

        def assemble(k_clusters):
            """The design for ``k_clusters`` (None: no clustering) from the embedded ``base``."""
            u, v, joined, hist_vecs = base
            sub: dict[str, Any] = {}
            if k_clusters is not None:
                from causalrec.features.history import topic_clusters

                basis = [b for b in (hist_vecs, v) if b is not None] or [u]
                tc = topic_clusters(np.vstack(basis), k_clusters, seed=seed, n_init=cluster_restarts)
                if hist is not None:
                    hist_vecs = tc.memberships(hist_vecs, text_cluster_weights)
                v = tc.memberships(v, text_cluster_weights) if v is not None else None
                joined = tc.memberships(joined, text_cluster_weights) if joined is not None else None
                if hist is not None:
                    u = mean_pool(hist, hist_vecs)
                else:
                    u = joined
                sub["text_clusters_k"] = int(tc.centers.shape[0])
                sub["text_cluster_weights"] = text_cluster_weights
            if hist is not None and history_pooling == "attention":
                from causalrec.features.history import attention_pool

                if v is None:
                    raise InputError("attention pooling of a history needs item text (the query)",
                                     column="item_text", fix="pass --item-text, or use --history-pooling mean")
                u = attention_pool(hist, hist_vecs, v)
            sub["embedding_dim"] = int((u if u is not None else v).shape[1])
            X, names = design_matrix(user_emb=u, item_emb=v, covariates=cov, return_names=True,
                                     interaction=text_interaction)
            if hist is not None and joined is not None:  # the joined string's embedding as extra columns
                X = np.hstack([X, joined.astype(np.float32)])
                names = names + [f"ut{j}" for j in range(joined.shape[1])]
                sub["joined_user_text"] = True
            sub["interaction_block"] = bool(u is not None and v is not None)
            return X, names, sub

        info["text_model"] = getattr(embedder, "model_id", repr(embedder))
        if text_clusters == "loss":
            if cluster_selector is None:
                raise InputError("text_clusters='loss' chooses k by the cross-fitted propensity loss, which "
                                 "needs the treatment", column="text_clusters",
                                 fix="use causalrec.uplift.estimate (or --text-clusters loss), or give k / auto")
            basis = [b for b in (hist_vecs, v) if b is not None] or [u]
            n_unique = len(np.unique(np.vstack(basis), axis=0))
            ks = [k for k in CLUSTER_CANDIDATES if k < n_unique]
            if not ks:
                raise InputError(f"{n_unique} unique item vectors are too few for text_clusters='loss' "
                                 f"(candidates {CLUSTER_CANDIDATES})", column="text_clusters",
                                 fix="give more items, or a smaller k")
            built = {k: assemble(k) for k in ks}
            k_best, report = cluster_selector({k: b[0] for k, b in built.items()})
            X, names, sub = built[k_best]
            info["text_cluster_selection"] = report
        else:
            X, names, sub = assemble(text_clusters)
        info.update(sub)
        info["text_interaction"] = text_interaction
        return X, names, info
    if kind == "ids":
        from causalrec.features import TabularEncoder

        cols = [c for c in ("user_id", "item_id") if c in canon.columns]
        if not cols:
            raise InputError("features='ids' needs a user id or item id column", column="user_id",
                             fix="map the user_id / item_id roles to log columns")
        frame = canon[cols].astype(str)
        enc = TabularEncoder(columns=cols, max_categories=5000).fit(frame)
        ids = enc.transform(frame)
        names = [str(n) for n in enc.get_feature_names_out()]
        if cov is not None:
            c, cn = design_matrix(covariates=cov, return_names=True)
            return np.hstack([ids, c]).astype(np.float32), names + cn, info
        return ids.astype(np.float32), names, info
    if kind == "covariates":
        if cov is None:
            raise InputError("features='covariates' needs at least one covariate", column="covariates",
                             fix="pass --covariates A,B or use text features (--user-text / --item-text)")
        X, names = design_matrix(covariates=cov, return_names=True)
        return X, names, info
    raise InputError(f"unknown features {features!r}; use one of {FEATURE_KINDS} or an array", column="features",
                     fix="features='text' (embeddings), 'ids', 'covariates', or a numeric array")


HEADS = ("mlp", "bilinear", "auto", "shared")


def _logged_propensity(s: pd.Series, col: str) -> np.ndarray:
    """Logged exposure propensities: numeric and strictly inside (0, 1)."""
    v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(v) | (v <= 0.0) | (v >= 1.0)
    if bad.any():
        raise InputError(f"the logged propensity column '{col}' has {int(bad.sum())} values outside (0, 1) "
                         f"(e.g. {s[bad].iloc[0]!r})", column=col,
                         fix="propensities must be exposure probabilities strictly between 0 and 1; drop or "
                             "fix those rows, or leave out --propensity to estimate them")
    return v


def _candidate_models(heads: str, device: str, seed: int, y: np.ndarray, info: dict[str, Any],
                      propensity_model: Any, outcome_model: Any) -> list[tuple[str, Any, Any]]:
    """``(name, propensity model, outcome model)`` candidates; user-passed models win.

    On tabular covariates (``features="covariates"``) the default propensity is the choice
    between the torch MLP and an L2 logistic regression, the default outcome model the
    choice between the torch MLP and ridge regression, each by cross-fitted loss (dicts
    of candidates for the engine). On text designs (hundreds to thousands of embedding
    columns) the linear candidates are not added: the MLP / bilinear heads compete there.

    On text *cluster* designs (``text_clusters``: ``[u, v, u * v]`` of ``k`` topic memberships,
    a few dozen columns) the L2 logistic propensity joins the propensity candidates (flat
    names: ``mlp``, ``logistic_l2``, ``bilinear``), chosen by the cross-fitted log loss; the
    outcome candidates stay the heads. Why (simulator, pilot seeds 300-302 outside the study's
    table, 20,000 rows, 8 clusters chosen by ``text_clusters="loss"``): the logistic propensity had
    the lowest cross-fitted log loss on every seed (0.5817 against the MLP's 0.5881 on seed 300)
    and, beside the MLP outcome model, the AIPW error fell from +0.019 / +0.012 / +0.018 (MLP
    propensity) to +0.015 / +0.005 / +0.013. Linear outcome models (ridge; a logistic link) had a
    lower arm-row squared error than the MLP on those seeds but left more bias (ridge: +0.017 /
    +0.007 / +0.017): the arm-row loss does not see the part of ``mu``'s error that is correlated
    with the propensity's error, which is what biases AIPW, so they are not added as outcome
    candidates here. The 20-seed figures: ``reports/text_confounding_history.md``
    (``hist_mix_loss_default_*``).
    """
    if propensity_model is not None and outcome_model is not None:
        return [("given", propensity_model, outcome_model)]
    dp, do = _default_models(device, seed, y)
    if heads == "shared":
        return [_shared_candidate(device, seed, do.loss, info, propensity_model, outcome_model)]
    names = ["mlp"] if heads == "mlp" else ["bilinear"] if heads == "bilinear" else ["mlp", "bilinear"]
    if "bilinear" in names and not info.get("interaction_block"):
        if heads == "bilinear":
            raise InputError("heads='bilinear' needs user and item text (the u^T W v term)", column="heads",
                             fix="give both --user-text/--user-history and --item-text, or use --heads mlp")
        names = ["mlp"]
    tabular = info.get("features") == "covariates"
    clustered = info.get("features") == "text" and info.get("text_clusters_k") is not None
    out = []
    for name in names:
        if name == "mlp" and clustered:
            from causalrec.models.linear import logistic_propensity

            p, o = {"mlp": dp, "logistic_l2": logistic_propensity(seed)}, do
        elif name == "mlp" and tabular:
            # small tabular adjustment sets: regularised linear candidates beside the MLPs, the
            # cross-fitted loss chooses per nuisance (see causalrec.models.linear for why)
            from causalrec.models.linear import logistic_propensity, ridge_outcome

            p = {"mlp": dp, "logistic_l2": logistic_propensity(seed)}
            o = {"mlp": do, "ridge": ridge_outcome()}
        elif name == "mlp":
            p, o = dp, do
        else:
            from causalrec.models.text_models import BilinearOutcomeModel, BilinearPropensityModel

            d = int(info["embedding_dim"])
            # unfloored, like the default MLP: the estimator clips (and measures share_clipped) itself
            p = BilinearPropensityModel(device=device, random_state=seed, embedding_dim=d, clip=None)
            o = BilinearOutcomeModel(device=device, random_state=seed, embedding_dim=d, loss=do.loss)
        out.append((name, propensity_model if propensity_model is not None else p,
                    outcome_model if outcome_model is not None else o))
    return out


def _shared_candidate(device: str, seed: int, loss: str, info: dict[str, Any], propensity_model: Any,
                      outcome_model: Any) -> tuple[str, Any, None]:
    """``("shared", SharedTextNuisance, None)``: one DragonNet-style model of ``e``, ``mu0``, ``mu1``
    (:class:`causalrec.models.text_models.SharedTextNuisance`); ``None`` as the outcome model marks
    the candidate as joint for :func:`_fit_candidates`. Its ``e`` is unfloored (the model has no
    clip): the estimator's ``clip`` and ``share_clipped`` apply to it as to the MLP head.

    Not a candidate of ``heads="auto"``: that choice is made per nuisance (log loss of ``e``,
    arm-row squared error of ``mu_t``), which would pair the shared ``e`` with another model's
    ``mu`` (or the reverse) and so drop what the shared fit is for: its targeted-regularisation
    term moves ``mu_t`` away from the squared-error fit, towards one that solves the AIPW
    estimating equation with its own ``e``, so the arm-row loss scores it against the wrong target.
    """
    if not info.get("interaction_block"):
        raise InputError("heads='shared' needs user and item text (a shared representation of [u, v, u*v])",
                         column="heads",
                         fix="give both --user-text/--user-history and --item-text, or use --heads mlp")
    if propensity_model is not None or outcome_model is not None:
        raise InputError("heads='shared' fits e and mu jointly in one model: a passed propensity or outcome "
                         "model cannot be combined with it", column="heads",
                         fix="pass both models (heads is then ignored), neither, or use --heads mlp")
    from causalrec.models.text_models import SharedTextNuisance

    return ("shared", SharedTextNuisance(device=device, random_state=seed,
                                         embedding_dim=int(info["embedding_dim"]), loss=loss), None)


def _fit_candidates(candidates: list[tuple[str, Any, Any]], X: np.ndarray, t: np.ndarray, y: np.ndarray, *,
                    n_folds: int, groups: np.ndarray | None, seed: int,
                    logged_e: np.ndarray | None, folds: str = "split",
                    fold_ids: np.ndarray | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Cross-fit every candidate in ONE engine call (one set of folds); per nuisance the
    lowest out-of-fold loss wins (the engine's selection: log loss of ``e``, squared error
    of ``mu_t`` on the arm-``t`` rows). One candidate: no selection is reported here
    (``diagnostics["nuisance_models"]`` always holds the engine's losses).
    """
    criterion = (f"cross-fitted loss ({n_folds} folds; propensity: log loss, outcome: squared error on each "
                 "arm's rows)")
    if len(candidates) == 1 and candidates[0][2] is None:  # one joint model (_shared_candidate): e, mu0, mu1
        name, joint, _ = candidates[0]
        nu = cross_fit_nuisances(X, t, y, propensity_model=None, outcome_model=None, joint={name: joint},
                                 n_folds=n_folds, groups=groups, seed=seed, propensity=logged_e, folds=folds,
                                 fold_ids=fold_ids)
        sel = nu["crossfit"].selection_report()
        selection = {"criterion": criterion + "; one joint model, given by heads", "joint": name,
                     "outcome": {"mu0": sel["mu0"], "mu1": sel["mu1"]}}
        if logged_e is None:  # with a logged propensity the joint e only trains the representation
            selection["propensity"] = sel["e"]
        return {**nu, "models": (joint, joint)}, selection
    if len(candidates) == 1:  # one set of models (each may itself be a dict of candidates)
        _, p, o = candidates[0]
    else:  # one flat dict per nuisance: a candidate that is itself a dict contributes its entries
        p, o = {}, {}
        for name, pm, om in candidates:
            p.update(pm if isinstance(pm, dict) else {name: pm})
            o.update(om if isinstance(om, dict) else {name: om})
    nu = cross_fit_nuisances(X, t, y, propensity_model=p, outcome_model=o, n_folds=n_folds, groups=groups,
                             seed=seed, propensity=logged_e, folds=folds, fold_ids=fold_ids)
    if not (isinstance(p, dict) or isinstance(o, dict)):
        return {**nu, "models": (p, o)}, {}
    sel = nu["crossfit"].selection_report()
    selection: dict[str, Any] = {"criterion": criterion, "outcome": {"mu0": sel["mu0"], "mu1": sel["mu1"]}}
    if "e" in sel:
        selection["propensity"] = sel["e"]
    if isinstance(p, dict):  # with a logged propensity there is no e to choose: the outcome's choice, if a p key
        p = p[sel["e"]["chosen"]] if "e" in sel else p.get(sel["mu1"]["chosen"], next(iter(p.values())))
    if isinstance(o, dict):
        o = o[sel["mu1"]["chosen"]]
    return {**nu, "models": (p, o)}, selection


def _default_models(device: str, seed: int, y: np.ndarray) -> tuple[Any, Any]:
    """causalrec's torch models; a cross-entropy outcome model for outcomes in [0, 1]
    (predictions stay probabilities, as the AIPW terms assume for clicks).

    The propensity model does not clip (``clip=None``): ``estimate`` clips at its own
    ``clip`` and measures ``share_clipped`` on the unclipped calibrated probabilities. A
    model that floored its output at 0.01 made that share always 0 and ``clip=0``
    ineffective."""
    from causalrec.models import OutcomeModel, PropensityModel

    loss = "bce" if (y.min() >= 0.0 and y.max() <= 1.0) else "mse"
    return (PropensityModel(device=device, random_state=seed, clip=None),
            OutcomeModel(device=device, random_state=seed, loss=loss))


def cross_fit_nuisances(X: np.ndarray, t: np.ndarray, y: np.ndarray, *, propensity_model: Any,
                        outcome_model: Any, n_folds: int, groups: np.ndarray | None,
                        seed: int, propensity: np.ndarray | None = None, folds: str = "split",
                        fold_ids: np.ndarray | None = None, joint: Any = None) -> dict[str, Any]:
    """Out-of-fold ``e(X)``, ``mu0(X)``, ``mu1(X)`` on one shared set of folds, from the
    cross-fitting engine (:class:`causalrec.models.TreatmentOutcome`).

    ``mu_t`` is a T-learner: the outcome model is fitted on the arm-``t`` rows of
    the training folds and predicts every held-out row. Either model may be a list (or
    dict) of candidates; the smallest cross-fitted loss wins (``"crossfit"``'s selection).
    ``propensity`` (logged exposure probabilities) replaces the propensity model: the
    engine then fits the outcome models only. ``folds``: ``"split"`` (seeded, grouped and
    stratified scikit-learn splits) or ``"hash"`` (:func:`uplift_folds`); ``fold_ids`` (one per
    row) overrides both, e.g. the Spark engine's hash folds of global row numbers. ``joint``: models of
    ``[e, mu0, mu1]`` at once (:class:`~causalrec.models.TreatmentOutcome`'s ``joint``; with both
    models ``None`` they alone give all three).
    """
    from causalrec.models import TreatmentOutcome, cross_fit

    if fold_ids is not None:
        folds = np.asarray(fold_ids, dtype=np.int64)
    else:
        folds = uplift_folds(folds, len(t), n_folds, groups=groups, stratify=t, seed=seed)
    if propensity is not None:
        propensity_model = None
    cf = cross_fit(TreatmentOutcome(propensity_model, outcome_model, joint=joint), {"X": X, "t": t, "y": y}, folds)
    e = np.asarray(propensity, dtype=float) if propensity is not None else cf["e"]
    return {"e_raw": e, "mu0": cf["mu0"].ravel(), "mu1": cf["mu1"].ravel(), "folds": folds,
            "crossfit": cf}


FOLD_KINDS = ("auto", "split", "hash")


def uplift_folds(kind: str, n: int, n_folds: int, *, groups: np.ndarray | None, stratify: np.ndarray | None,
                 seed: int, start: int = 0) -> np.ndarray:
    """Cross-fitting folds of ``n`` rows (the first global row number ``start``).

    ``"split"``: :func:`causalrec.models.folds.make_folds`, grouped by ``groups`` (a user in one
    fold) and stratified by the treatment; needs all rows at once. ``"hash"``: a seeded hash of the
    user key (:func:`causalrec.models.folds.cluster_hash_folds`: a user still sits in one fold) or,
    without groups, of the global row number (:func:`~causalrec.models.folds.row_hash_folds`); it
    needs no pass over the whole log, so the Spark engine assigns every row the same fold as the
    in-process run. Hash folds are balanced in expectation, not stratified.
    """
    from causalrec.models.folds import _check_k, cluster_hash_folds, make_folds, row_hash_folds

    if kind == "split":
        return make_folds(n, n_folds, groups=groups, stratify=stratify, random_state=seed)
    if kind != "hash":
        raise InputError(f"unknown folds {kind!r}", column="folds", fix=f"use one of {', '.join(FOLD_KINDS)}")
    if groups is not None:
        return cluster_hash_folds(np.asarray(groups), n_folds, seed)
    if start == 0:
        _check_k(n, n_folds)
    return row_hash_folds(start, n, n_folds, seed)


def bound_outcome_predictions(mu0: np.ndarray, mu1: np.ndarray,
                              y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip ``mu0``/``mu1`` to ``[min(y), max(y)]``; also return the rows where either moved.

    Any outcome model (a user's included) predicts a conditional mean of ``Y``, which
    lies in the convex hull of the observed outcomes (binary: [0, 1]); a prediction
    outside it is extrapolation, and in an AIPW mean one such row can dominate.
    """
    lo, hi = float(np.min(y)), float(np.max(y))
    b0, b1 = np.clip(mu0, lo, hi), np.clip(mu1, lo, hi)
    return b0, b1, (b0 != mu0) | (b1 != mu1)


def dml_effect_modifier_matrix(X: np.ndarray, mu0: np.ndarray, mu1: np.ndarray, k: int,
                               seed: int) -> np.ndarray:
    """DML's final-stage effect modifiers: ``[tau_hat - mean(tau_hat), PC_1..PC_k of X]``.

    ``tau_hat = mu1 - mu0`` is the run's out-of-fold T-learner effect, used as the proxy of
    Chernozhukov, Demirer, Duflo & Fernandez-Val ("Generic machine learning inference on
    heterogeneous treatment effects"): a linear final stage on it can follow the effect
    surface the outcome models found, so ``mean theta(x_i)`` is close to the ATE even when
    the effect is far from linear in ``X``. With principal components only, the final stage
    is a projection weighted by ``e (1 - e)`` and its mean missed the IHDP surface-B ATE by
    0.37 on average (10 draws; 0.085 with the proxy).
    """
    tau = np.asarray(mu1, dtype=float) - np.asarray(mu0, dtype=float)
    cols = [tau - tau.mean()] if np.ptp(tau) > 0 else []
    pcs = _pca(X, k, seed)
    if pcs is not None:
        cols += list(pcs.T)
    return np.column_stack(cols) if cols else None


def _tail_warnings(diagnostics: dict[str, Any], t: np.ndarray, y: np.ndarray, e: np.ndarray, e_raw: np.ndarray,
                   mu0: np.ndarray, mu1: np.ndarray, rows: np.ndarray) -> list[str]:
    """Heavy-tailed AIPW influence values, poor propensity calibration and balance that
    worsens after weighting: diagnostics, and warnings naming the log rows responsible
    (``rows``: log row position of each analysed row)."""
    from causalrec.diagnostics.tails import (
        CALIBRATION_WARN,
        INFLUENCE_TAIL_WARN,
        calibration_gap,
        influence_tail,
        row_list,
    )

    out = []
    share, idx = influence_tail(ate_mod.aipw_scores(t, y, e, mu0, mu1))
    diagnostics["influence_top1pct_share"] = share
    if share > INFLUENCE_TAIL_WARN:
        out.append(f"heavy-tailed influence values: {len(idx)} rows (1%) carry {share:.0%} of the AIPW variance "
                   f"(log rows {row_list(rows[idx])}; propensities there {row_list(np.round(e[idx], 3))}): the "
                   "AIPW/IPW estimates and their intervals rest on these rows")
    ece, bad, (lo, hi, me, mt) = calibration_gap(t, e_raw)
    diagnostics["propensity_ece"] = ece
    if ece > CALIBRATION_WARN:
        out.append(f"poorly calibrated propensities: expected calibration error {ece:.3f}; worst in "
                   f"e in [{lo:.1f}, {hi:.1f}) (mean e {me:.3f}, treated share {mt:.3f}; log rows "
                   f"{row_list(rows[bad])}): inverse-propensity weights there are off")
    before, after = diagnostics.get("smd_max_before"), diagnostics.get("smd_max_after")
    if before is not None and after is not None and after > before:
        w = np.where(t == 1, 1.0 / e, 1.0 / (1.0 - e))
        heavy = np.argsort(-w, kind="stable")[:5]
        out.append(f"covariate balance is worse after weighting (max |SMD| {before:.3f} -> {after:.3f}): the "
                   f"propensity model does not balance the adjustment features; heaviest-weighted log rows "
                   f"{row_list(rows[heavy])} (weights {row_list(np.round(w[heavy], 1))})")
    return out


def _pca(X: np.ndarray, k: int, seed: int) -> np.ndarray | None:
    if k <= 0:
        return None
    from sklearn.decomposition import PCA

    Xs = (X - X.mean(0)) / (X.std(0) + 1e-8)
    k = min(k, X.shape[1], X.shape[0] - 1)
    return PCA(n_components=k, random_state=seed).fit_transform(Xs)


def estimate(
    logs: Any,
    *,
    schema: LogSchema | None = None,
    treatment: str | None = None,
    outcome: str | None = None,
    user_id: str | None = None,
    item_id: str | None = None,
    user_text: str | None = None,
    item_text: str | None = None,
    items: Any = None,
    item_key: str | None = None,
    user_history: str | None = None,
    history_sep: str | None = None,
    history_pooling: str = "mean",
    propensity: str | None = None,
    heads: str = "mlp",
    text_components: int | None = None,
    text_clusters: int | str | None = None,
    text_cluster_weights: str = "mixture",
    text_interaction: str = "product",
    covariates: Sequence[str] = (),
    features: str | np.ndarray = "auto",
    methods: Sequence[str] = ("naive", "ipw", "aipw", "dml"),
    n_folds: int = 5,
    folds: str = "auto",
    clip: float = 0.01,
    trim: float | None = None,
    propensity_model: Any = None,
    outcome_model: Any = None,
    embedder: Any = None,
    model: str | None = None,
    device: str = "auto",
    dml_effect_modifiers: int = 4,
    group_by_user: bool = True,
    ci_level: float = 0.95,
    ci_target: str = "sample",
    seed: int = 0,
    progress: bool | None = None,
    # -- heterogeneity, diagnostics and refutations (causalrec.uplift.analysis) --
    per_item: bool = False,
    segments: str | None = None,
    cate: str | None = None,
    curves: bool = False,
    refute: bool = False,
    analysis_options: dict[str, Any] | None = None,
    spark_fit_rows: int = 1_000_000,
) -> UpliftResult:
    """Estimate the ATE and ATT of a binary exposure on an outcome.

    Parameters
    ----------
    logs:
        DataFrame or CSV/Parquet path, one row per (user, item) impression/candidate.
    schema, treatment, outcome, user_id, item_id, user_text, item_text:
        Column roles (keyword arguments override the schema). With ``items`` given,
        ``item_text`` names the *catalogue's* text column.
    items, item_key:
        Item catalogue (DataFrame or path) and its key column (default ``"item_id"``),
        joined to the log's item id to get item text.
    user_history, history_sep, history_pooling:
        A column holding each user's history as a list of item texts/ids (or one
        string split on ``history_sep``); the user vector is then the ``"mean"``
        (or item-aware ``"attention"``) pooling of the item embeddings, each unique
        item embedded once (:mod:`causalrec.features.history`). Ids found in the
        ``items`` catalogue are replaced by their text.
    propensity:
        A column of exposure propensities logged by the recommender, in (0, 1): used
        as ``e`` (no propensity model is fitted); outcome models are still cross-fitted.
    heads:
        Nuisance heads for text features: ``"mlp"`` (MLP on ``[u, v, u*v, c]``),
        ``"bilinear"`` (MLP + low-rank two-tower term ``u^T W v``,
        :mod:`causalrec.models.text_models`), or ``"auto"``: both cross-fitted on the
        same folds and, per nuisance, the one with the lower out-of-fold loss kept
        (the choice and every candidate's loss are in ``diagnostics["nuisance_selection"]``),
        or ``"shared"``: one DragonNet-style model of ``e``, ``mu0``, ``mu1`` on a shared
        representation with targeted regularisation
        (:class:`~causalrec.models.text_models.SharedTextNuisance`; its cross-fitted losses in
        ``diagnostics["nuisance_selection"]``; needs user and item text). ``"auto"`` does not
        include it: its per-nuisance choice cannot score a joint fit (:func:`_shared_candidate`).
        Ignored when both models are passed.
    text_components:
        Project the user and item vectors on this many principal components of the
        unique item vectors before building ``[u, v, u*v]`` (fewer weights to learn).
    text_clusters:
        ``k``, ``"auto"`` (silhouette) or ``"loss"`` (the ``k`` of :data:`CLUSTER_CANDIDATES`
        whose design gives the lowest cross-fitted log loss of a logistic propensity on the
        nuisance folds, :func:`select_clusters_by_propensity_loss`; the losses are in
        ``config["text_cluster_selection"]``): replace the user and item vectors by
        memberships of ``k`` KMeans clusters of the unique item vectors (for a history,
        the mean membership of its items: a topic profile).
    text_cluster_weights:
        How a vector's cluster memberships are read: ``"soft"`` (softmax of squared distances
        to the centres) or ``"mixture"`` (topic proportions by least squares on the simplex,
        for texts that mix topics; :meth:`causalrec.features.history.TopicClusters.mixture_weights`;
        the default: on the simulator at 20,000 rows it lowered the residual bias of the history
        representation on every seed tried, see ``reports/text_confounding_history.md``).
    text_interaction:
        ``"product"`` (default): the interaction block is ``u * v``; ``"outer"``: every
        ``u_j v_l`` (a full bilinear ``u^T W v`` for linear heads; needs vectors of at most
        64 dimensions, e.g. ``text_clusters``).
    covariates:
        Tabular columns added to every adjustment set (numeric standardised,
        categorical one-hot).
    features:
        ``"auto"`` (text when any text is present, else covariates), ``"text"``,
        ``"ids"``, ``"covariates"`` or a numeric ``(n, k)`` array.
    methods:
        Any of ``naive``, ``ipw``, ``aipw``, ``dml``.
    n_folds:
        Cross-fitting folds (grouped by user when a user column exists and
        ``group_by_user``).
    folds:
        How rows are assigned to folds (:func:`uplift_folds`): ``"split"`` (seeded scikit-learn
        splits, grouped and stratified), ``"hash"`` (a seeded hash of the user key, or of the
        row number without users: what the Spark engine uses) or ``"auto"`` (``split`` in
        process, ``hash`` on Spark). In process ``folds="hash"`` gives the Spark run's folds.
    spark_fit_rows:
        On a Spark DataFrame the nuisances are fitted on the driver from the collected needed
        columns; above this many rows from a seeded sample at the same rate in every fold
        (:mod:`causalrec.engines.spark_uplift`; a warning and ``config["spark"]["nuisance_fit"]``
        say so).
    clip, trim:
        Propensity clipping level (estimand unchanged, bias traded for variance) and
        optional trimming level (rows outside ``[trim, 1 - trim]`` dropped: the
        estimand becomes the effect on the overlap population).
    propensity_model, outcome_model:
        Any scikit-learn classifier / regressor (or a list / dict of candidates, chosen by
        cross-fitted loss); default causalrec's ``PropensityModel`` / ``OutcomeModel`` (torch
        MLPs) on ``device``, with linear candidates beside them on tabular covariates (both
        nuisances) and on text cluster designs (the propensity only): see
        :func:`_candidate_models`.
    embedder, model, device:
        A ``TextEmbedder`` to reuse, or the local model folder and device for a new one.
    dml_effect_modifiers:
        Number of leading principal components of ``X`` used as DML's effect
        modifiers, next to the out-of-fold ``mu1 - mu0`` (see
        :func:`dml_effect_modifier_matrix`).
    ci_target:
        What the AIPW and DML intervals cover: ``"sample"`` (default) the effect on the
        analysed rows, ``(1/n) sum_i tau(x_i)`` (ATT: over the exposed rows), with the
        covariates held fixed; ``"population"`` ``E[tau(X)]`` for a population the rows are
        sampled from (wider by about ``Var(tau(X)) / n``). See :mod:`causalrec.uplift.ate`.
        IPW and naive intervals are population ones either way.
    per_item, segments, cate, curves, refute, analysis_options:
        Further analysis of the fitted nuisances (:func:`causalrec.uplift.analysis.analyze`):
        AIPW effects per item, per segment (a log column, or ``"embedding"`` for KMeans
        clusters of the user-text embeddings), a CATE model (``linear_dml``,
        ``causal_forest``, ``dr_learner``), the DR-weighted uplift curve, and the
        dowhy/econml refutation suite; ``analysis_options`` passes further keywords
        (e.g. ``num_simulations``, ``n_boot``). The result then has ``.analysis``
        (an ``UpliftAnalysis``) and its JSON under the top-level ``"analysis"`` key.
    """
    if schema is None:
        schema = LogSchema()
    schema = schema.with_(treatment=treatment, outcome=outcome, user_id=user_id, item_id=item_id,
                          user_text=user_text, item_text=item_text if items is None else None)
    if user_history is not None and schema.user_text == user_history:
        # the history column is the user's text: pool it, do not also embed it joined
        schema = LogSchema(**{**schema.to_dict(), "user_text": None, "covariates": tuple(schema.covariates)})
    if items is not None:
        # item text comes from the catalogue: ignore any same-named log column
        schema = LogSchema(**{**schema.to_dict(), "item_text": None, "covariates": tuple(schema.covariates)})
    schema = LogSchema(**{**schema.to_dict(), "covariates": tuple(dict.fromkeys([*schema.covariates, *covariates]))})
    methods = [m.strip().lower() for m in methods]
    unknown = [m for m in methods if m not in ate_mod.ESTIMATORS]
    if unknown or not methods:
        raise InputError(f"unknown method(s) {unknown or methods}; choose from {', '.join(ate_mod.ESTIMATORS)}",
                         column="method", fix="e.g. --method naive,ipw,aipw,dml")
    if not 0.0 <= clip < 0.5:
        raise InputError(f"clip must be in [0, 0.5), got {clip}", column="clip", fix="e.g. clip=0.01")
    if trim is not None and not 0.0 < trim < 0.5:
        raise InputError(f"trim must be in (0, 0.5), got {trim}", column="trim", fix="e.g. trim=0.05, or no trimming")
    if int(n_folds) < 2:
        raise InputError(f"n_folds must be >= 2, got {n_folds}", column="folds", fix="e.g. n_folds=5 (CLI --n-folds 5)")
    ate_mod._check_ci_target(ci_target)
    from causalrec.engines import is_spark_dataframe

    spark = is_spark_dataframe(logs)
    if folds not in FOLD_KINDS:
        raise InputError(f"unknown folds {folds!r}", column="folds", fix=f"use one of {', '.join(FOLD_KINDS)}")
    if folds == "auto":
        folds = "hash" if spark else "split"
    if spark:
        from causalrec.engines.spark_uplift import uplift_spark

        return uplift_spark(logs, schema=schema, methods=methods, features=features, n_folds=int(n_folds),
                            folds=folds, clip=clip, trim=trim, propensity=propensity,
                            propensity_model=propensity_model, outcome_model=outcome_model, device=device,
                            group_by_user=group_by_user, ci_level=ci_level, ci_target=ci_target, seed=seed,
                            fit_rows=spark_fit_rows, unsupported={
                                "items": items, "user_history": user_history, "embedder": embedder,
                                "per_item": per_item, "segments": segments, "cate": cate, "curves": curves,
                                "refute": refute})

    from causalrec.features.design import check_interaction

    check_interaction(text_interaction)
    if text_cluster_weights not in ("soft", "mixture"):
        raise InputError(f"unknown text_cluster_weights {text_cluster_weights!r}", column="text_cluster_weights",
                         fix="'soft' or 'mixture'")
    if heads not in HEADS:
        raise InputError(f"unknown heads {heads!r}; use one of {HEADS}", column="heads",
                         fix="--heads mlp, bilinear, auto or shared")
    df = read_table(logs)
    check_columns_named(df.columns, {"--user-text": user_text, "--item-text": item_text if items is None else None,
                        "--user-history": user_history, "--propensity": propensity})
    hist_values = df[user_history] if user_history is not None else None
    logged_e = _logged_propensity(df[propensity], propensity) if propensity is not None else None
    if segments and segments != "embedding" and segments not in df.columns:  # fail before any fitting
        raise InputError(f"no segment column '{segments}' in the log; columns: {list(df.columns)[:12]}",
                         column=segments, fix="name a log column (e.g. a user attribute) or 'embedding'")
    canon = validate_log(df, schema, require=("treatment", "outcome"), binary=("treatment",), command="uplift")
    t_all = canon["treatment"].to_numpy().astype(np.int8)
    y_all = canon["outcome"].to_numpy(dtype=float)
    n1 = int(t_all.sum())
    if n1 < 2 or len(t_all) - n1 < 2:
        raise InputError(f"column '{schema.treatment}' needs at least 2 treated and 2 untreated rows "
                         f"(has {n1} treated of {len(t_all)})", column=schema.treatment,
                         fix="check the treatment column: an effect needs both exposed and unexposed rows")
    groups_all = (canon["user_id"].astype(str).to_numpy()
                  if group_by_user and "user_id" in canon.columns else None)
    warnings: list[str] = []
    diagnostics: dict[str, Any] = {"n_treated": n1, "n_control": int(len(t_all) - n1),
                                   "treated_share": float(n1 / len(t_all))}
    config: dict[str, Any] = {
        "schema": schema.to_dict(), "methods": list(methods), "n_folds": int(n_folds), "clip": clip,
        "trim": trim, "covariates": list(covariates), "folds": folds, "seed": seed, "ci_level": ci_level, "ci_target": ci_target,
        "dml_effect_modifiers": int(dml_effect_modifiers), "group_by_user": group_by_user,
        "items": str(items) if isinstance(items, (str, bytes)) or hasattr(items, "__fspath__") else
        ("DataFrame" if items is not None else None), "item_key": item_key,
    }
    needs_nuisance = any(m in ("ipw", "aipw", "dml") for m in methods)
    estimates = []
    nuisance: dict[str, Any] = {"t": t_all, "y": y_all, "groups": groups_all}
    keep = np.ones(len(t_all), dtype=bool)
    estimand = "ATE = E[Y(1) - Y(0)] and ATT = E[Y(1) - Y(0) | T = 1] over all logged rows"
    if needs_nuisance:
        selector = None
        if text_clusters == "loss":
            sel_folds = uplift_folds(folds, len(t_all), int(n_folds), groups=groups_all, stratify=t_all, seed=seed)

            def selector(designs):
                return select_clusters_by_propensity_loss(designs, t_all, sel_folds)
        X, names, info = build_features(canon, features=features, covariates=list(schema.covariates),
                                        items=items, item_key=item_key, item_text=item_text,
                                        embedder=embedder, model=model, device=device, progress=progress,
                                        history=hist_values, history_sep=history_sep,
                                        history_pooling=history_pooling, text_components=text_components,
                                        text_clusters=text_clusters, text_interaction=text_interaction,
                                        text_cluster_weights=text_cluster_weights,
                                        seed=seed, cluster_selector=selector)
        config.update(info)
        config["n_features"] = int(X.shape[1])
        config.update({"user_history": user_history, "history_sep": history_sep, "history_pooling": history_pooling,
                       "propensity": propensity, "heads": heads,
                       "text_components": text_components, "text_clusters": text_clusters,
                       "text_cluster_weights": text_cluster_weights,
                       "text_interaction": text_interaction})
        candidates = _candidate_models(heads, device, seed, y_all, info, propensity_model, outcome_model)
        nu, selection = _fit_candidates(candidates, X, t_all, y_all, n_folds=int(n_folds), groups=groups_all,
                                        seed=seed, logged_e=logged_e, folds=folds)
        propensity_model, outcome_model = nu.pop("models")
        if selection:
            diagnostics["nuisance_selection"] = selection
        config["propensity_model"] = "logged column " + repr(propensity) if logged_e is not None else repr(propensity_model)
        config["outcome_model"] = repr(outcome_model)
        e_raw = nu["e_raw"]
        nu["mu0"], nu["mu1"], bounded = bound_outcome_predictions(nu["mu0"], nu["mu1"], y_all)
        diagnostics["outcome_range"] = [float(y_all.min()), float(y_all.max())]
        diagnostics["share_outcome_predictions_bounded"] = float(bounded.mean())
        if bounded.any():
            warnings.append(f"{int(bounded.sum())} rows had outcome-model predictions outside the observed outcome "
                            f"range [{y_all.min():.4g}, {y_all.max():.4g}] and were bounded to it (rows "
                            f"{row_list(np.flatnonzero(bounded))}): the outcome model extrapolates there")
        if trim is not None:
            keep = (e_raw >= trim) & (e_raw <= 1.0 - trim)
            share = float(1.0 - keep.mean())
            diagnostics["share_trimmed"] = share
            if keep.sum() < 4 or t_all[keep].sum() < 2 or (1 - t_all[keep]).sum() < 2:
                raise InputError(f"trimming at {trim} leaves too few rows in one arm", column="trim",
                                 fix="lower --trim or check overlap")
            estimand = (f"effects on the overlap population: rows with estimated propensity in "
                        f"[{trim}, {1 - trim}] ({share:.1%} of rows trimmed); this differs from the "
                        "ATE over all rows when effects vary with the propensity")
            if share > 0:
                warnings.append(f"{share:.1%} of rows trimmed (estimated propensity outside "
                                f"[{trim}, {1 - trim}]): the estimand is the effect on the overlap population")
        e = np.clip(e_raw[keep], clip, 1.0 - clip)
        share_clipped = clipped_share(e_raw[keep], clip)
        t, y = t_all[keep], y_all[keep]
        groups = groups_all[keep] if groups_all is not None else None
        mu0, mu1 = nu["mu0"][keep], nu["mu1"][keep]
        Xk = X[keep]
        from causalrec.diagnostics import design_balance, effective_sample_size, ess_warning
        from causalrec.diagnostics.weights import ipw_weights

        w = ipw_weights(t, e, "ate")
        ess = effective_sample_size(w)
        diagnostics.update({
            "propensity_min": float(e_raw.min()), "propensity_max": float(e_raw.max()),
            "propensity_q01": float(np.quantile(e_raw, 0.01)), "propensity_q99": float(np.quantile(e_raw, 0.99)),
            "clip": clip, "share_clipped": share_clipped, "ess": ess, "ess_share": ess / len(t),
            "max_weight": float(w.max()),
        })
        balance = design_balance(t, e, Xk, names, random_state=seed)
        diagnostics.update({"smd_max_before": balance.max_abs_before, "smd_max_after": balance.max_abs_after,
                            "smd_mean_before": float(balance.table["smd_before"].abs().mean()),
                            "smd_mean_after": float(balance.table["smd_after"].abs().mean())})
        msg = clip_warning(share_clipped, clip)
        if msg:
            warnings.append(msg)
        msg = ess_warning(ess, len(t), "estimates rest on a few heavily weighted rows")
        if msg:
            warnings.append(msg)
        warnings += _tail_warnings(diagnostics, t, y, e, e_raw[keep], mu0, mu1, np.flatnonzero(keep))
        diagnostics["nuisance_models"] = nu["crossfit"].selection_report()
        nuisance.update({"e_hat": e, "e_raw": e_raw[keep], "mu0": mu0, "mu1": mu1, "X": Xk, "t": t, "y": y,
                         # E[Y | X] for DML's partialling out, from the same fits
                         "m_hat": e * mu1 + (1.0 - e) * mu0, "crossfit": nu["crossfit"],
                         "groups": groups, "keep": keep, "folds": nu["folds"][keep], "feature_names": names,
                         "balance": balance})
    else:
        t, y, groups = t_all, y_all, groups_all

    for m in methods:
        if m == "naive":
            estimates += ate_mod.naive(t, y, ci_level=ci_level)
        elif m == "ipw":
            estimates += ate_mod.ipw(t, y, nuisance["e_hat"], groups=groups, ci_level=ci_level)
        elif m == "aipw":
            estimates += ate_mod.aipw(t, y, nuisance["e_hat"], nuisance["mu0"], nuisance["mu1"],
                                      groups=groups, ci_level=ci_level, ci_target=ci_target)
        elif m == "dml":
            # econml's final stage on the nuisances fitted above (one fit per run): the
            # controls W are row numbers that Precomputed* look the out-of-fold e, m up by.
            from causalrec.models import PrecomputedClassifier, PrecomputedRegressor

            e_k, m_k = nuisance["e_hat"], nuisance["m_hat"]
            mods = dml_effect_modifier_matrix(nuisance["X"], nuisance["mu0"], nuisance["mu1"],
                                              int(dml_effect_modifiers), seed)
            est, _ = ate_mod.dml(np.arange(len(t), dtype=float)[:, None], t, y, model_y=PrecomputedRegressor(m_k),
                                 model_t=PrecomputedClassifier(e_k), effect_modifiers=mods, n_folds=int(n_folds),
                                 groups=groups, seed=seed, ci_level=ci_level, ci_target=ci_target)
            estimates += est
    if "naive" in methods and needs_nuisance:
        warnings_note = ("naive is the unadjusted difference in means: it is biased whenever exposure "
                         "depended on what also drives the outcome")
        config["naive_note"] = warnings_note
    result = UpliftResult(command="uplift", n_rows=int(len(t_all)), estimates=estimates, diagnostics=diagnostics,
                          warnings=warnings, config=config, nuisance=nuisance,
                          data=canon[keep].reset_index(drop=True), estimand=estimand)
    if per_item or segments or cate or curves or refute:
        seg_values = None
        if segments and segments != "embedding" and segments not in result.data.columns:
            seg_values = df[segments].to_numpy()[keep]
        _attach_analysis(result, needs_nuisance=needs_nuisance, per_item=per_item, segments=segments, cate=cate,
                         curves=curves, refute=refute, options={"segment_values": seg_values,
                                                                 **(analysis_options or {})},
                         models=(outcome_model, propensity_model), seed=seed, progress=progress)
    return result


def _attach_analysis(result: UpliftResult, *, needs_nuisance: bool, per_item: bool, segments: str | None,
                     cate: str | None, curves: bool, refute: bool, options: dict[str, Any] | None,
                     models: tuple[Any, Any], seed: int, progress: bool | None) -> None:
    """Run :func:`causalrec.uplift.analysis.analyze` and attach it (``result.analysis``)."""
    from causalrec.uplift.analysis import analyze

    if not needs_nuisance:
        raise InputError("per-item/segment effects, CATE, curves and refutations need fitted nuisances",
                         column="method", fix="include ipw, aipw or dml in the methods")
    opts = dict(options or {})  # CATE reuses the run's nuisances unless cate_models is given
    result.analysis = analyze(result, per_item=per_item, segments=segments, cate=cate, curves=curves,
                              refute=refute, seed=seed, progress=progress, **opts)
    result.config["analysis"] = {"per_item": per_item, "segments": segments, "cate": cate, "curves": curves,
                                 "refute": refute, **{k: v for k, v in opts.items()
                                                      if k not in ("cate_models", "segment_values")}}
