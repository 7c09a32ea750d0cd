"""Features for regression-EM's relevance model, from the texts the ranker reads.

``text_relevance_features(user_texts, item_texts)`` embeds both sides with
:class:`causalrec.features.TextEmbedder` (cached on disk) and returns::

    [cos(u, a), PCA(u), PCA(a), PCA(u) * PCA(a)]      (standardised columns)

the zero-shot cosine (the ranker's own starting score) plus a low-rank view
of both embeddings and their interaction, so a logistic relevance model can
follow what a personalised ranking used. The PCA (scikit-learn, fitted on the
union of the two sides) keeps the EM's logistic regression small: the M-step
is refitted every iteration.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def text_relevance_features(user_texts: Sequence[str], item_texts: Sequence[str], *, n_components: int = 16,
                            embedder=None, seed: int = 0) -> np.ndarray:
    """``(n, 1 + 3 n_components)`` standardised features for :func:`causalrec.debias.regression_em`."""
    from sklearn.decomposition import PCA

    from causalrec.features import TextEmbedder

    emb = embedder if embedder is not None else TextEmbedder(max_length=64)
    U = np.asarray(emb.encode(list(map(str, user_texts))), dtype=np.float64)
    A = np.asarray(emb.encode(list(map(str, item_texts))), dtype=np.float64)
    cos = (U * A).sum(axis=1, keepdims=True)
    k = int(min(n_components, U.shape[1], max(1, U.shape[0] - 1)))
    pca = PCA(k, random_state=seed).fit(np.vstack([U, A]))
    pu, pa = pca.transform(U), pca.transform(A)
    X = np.hstack([cos, pu, pa, pu * pa])
    sd = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
