"""Open Bandit Pipeline (obp 0.5.7) as a reference implementation for tests, loaded from its sdist.

obp does not install on Python >= 3.11, so its *source* is taken from the sdist that
``causalrec.data.obd`` downloads for the Open Bandit Dataset (``pip download``, SHA-256
checked) and its Python files extracted into ``obp-src`` under ``$CAUSALREC_PEER_CACHE``
(default ``~/.cache/causalrec-peers``);
nothing of it is copied into causalrec or committed. ``obp.ope.estimators_slate``,
``obp.dataset.synthetic_slate`` and ``obp.ope.regression_model_slate`` are imported
directly, with package stubs that skip obp's ``__init__`` files (they import everything,
torch included) and a stub ``torch`` module (obp.utils only names it in type hints).

If the source cannot run in this interpreter (obp wants numpy < 2 in places), the same
reference script runs in a side virtualenv (``obp-venv`` in the cache: the Python found
as ``python3.11``/``python3.10``/``python3.9`` and ``numpy<2``); when neither the sdist nor
that venv can be had, :func:`reference` returns ``None`` with the reason, and the test
skips saying so.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import types
from pathlib import Path

import numpy as np

OBP_PREFIX = "obp-0.5.7/obp/"


def cache_root() -> Path:
    """Peers' source and side venvs live apart from causalrec's data cache (which the test suite
    points at a temporary folder), so they are fetched once per machine."""
    base = os.environ.get("CAUSALREC_PEER_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(base) / "causalrec-peers" if not os.environ.get("CAUSALREC_PEER_CACHE") else Path(base)


def obp_source() -> tuple[Path | None, str]:
    """``(folder holding the obp package source, "")`` or ``(None, why not)``."""
    final = cache_root() / "obp-src"
    if (final / "obp" / "ope" / "estimators_slate.py").exists():
        return final, ""
    try:
        from causalrec.data.obd import _pip_download

        with tempfile.TemporaryDirectory() as tmp:
            sdist = _pip_download(Path(tmp))
            staging = Path(tempfile.mkdtemp(prefix="obp-src-", dir=final.parent if final.parent.exists() else None))
            with tarfile.open(sdist, "r:gz") as tar:
                for m in tar.getmembers():
                    if m.isfile() and m.name.startswith(OBP_PREFIX) and m.name.endswith(".py"):
                        dest = staging / "obp" / m.name[len(OBP_PREFIX):]
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        dest.write_bytes(tar.extractfile(m).read())
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                shutil.rmtree(staging, ignore_errors=True)
            else:
                os.replace(staging, final)
        return final, ""
    except Exception as exc:  # no network, no pip: the test says so and skips
        return None, f"the obp 0.5.7 sdist could not be fetched ({type(exc).__name__}: {str(exc)[:200]})"


class _StubTensor:
    """Stands for ``torch.Tensor`` in obp's type hints; nothing is an instance of it."""


def load(src: Path):
    """``(estimators_slate, synthetic_slate, regression_model_slate)`` modules of obp; also imports
    ``obp.utils`` (the one module of obp's OPE code that imports torch, for type hints only) and
    ``obp.ope.estimators_embed``.

    The ``torch`` stub is in ``sys.modules`` only while obp's modules are imported: left there it
    would be what every later ``import torch`` in the process gets (causalrec's text embedder), and
    matplotlib would take every object for a tensor (``isinstance(x, torch.Tensor)`` with
    ``Tensor = object`` recursed when drawing a figure).
    """
    stubbed = "torch" not in sys.modules
    if stubbed:
        stub = types.ModuleType("torch")
        stub.tensor = stub.Tensor = _StubTensor
        sys.modules["torch"] = stub
    try:
        for name, sub in (("obp", "obp"), ("obp.ope", "obp/ope"), ("obp.dataset", "obp/dataset")):
            if name not in sys.modules:
                mod = types.ModuleType(name)
                mod.__path__ = [str(src / sub)]
                sys.modules[name] = mod
        mods = tuple(importlib.import_module(m) for m in (
            "obp.ope.estimators_slate", "obp.dataset.synthetic_slate", "obp.ope.regression_model_slate"))
        try:  # MIPS: imported here, under the stub, for the callers that use it
            importlib.import_module("obp.ope.estimators_embed")
        except Exception:  # noqa: BLE001 - its callers import it again and say why it fails
            pass
        return mods
    finally:
        if stubbed and sys.modules.get("torch") is stub:
            del sys.modules["torch"]


def generate(src: Path, n_rounds: int, n_actions: int, len_list: int, factorizable: bool, seed: int) -> dict:
    """obp's synthetic slate data, an evaluation policy, obp's Cascade-DR model and obp's estimates."""
    import os as _os

    _os.environ.setdefault("TQDM_DISABLE", "1")
    est, syn, reg = load(src)
    from sklearn.linear_model import Ridge

    ds = syn.SyntheticSlateBanditDataset(
        n_unique_action=n_actions, len_list=len_list, dim_context=2, reward_type="binary",
        reward_structure="cascade_additive", click_model=None, random_state=seed, is_factorizable=factorizable,
        behavior_policy_function=syn.linear_behavior_policy_logit)
    bf = ds.obtain_batch_bandit_feedback(n_rounds=n_rounds, return_pscore_item_position=True)
    logit = np.random.default_rng(seed).normal(0.0, 1.0, (n_rounds, n_actions))
    ps, ps_ip, ps_c = ds.obtain_pscore_given_evaluation_policy_logit(bf["action"], logit,
                                                                     return_pscore_item_position=True)
    dist = ds.calc_evaluation_policy_action_dist(bf["action"], logit)
    model = reg.SlateRegressionModel(base_model=Ridge(alpha=1.0), len_list=len_list, n_unique_action=n_actions,
                                     fitting_method="normal")
    q_hat = model.fit_predict(context=bf["context"], action=bf["action"], reward=bf["reward"],
                              pscore_cascade=bf["pscore_cascade"], evaluation_policy_pscore_cascade=ps_c,
                              evaluation_policy_action_dist=dist)
    kw = dict(slate_id=bf["slate_id"], reward=bf["reward"], position=bf["position"])
    values = {
        "sips": est.SlateStandardIPS(len_list=len_list).estimate_policy_value(
            pscore=bf["pscore"], evaluation_policy_pscore=ps, **kw),
        "snsips": est.SelfNormalizedSlateStandardIPS(len_list=len_list).estimate_policy_value(
            pscore=bf["pscore"], evaluation_policy_pscore=ps, **kw),
        "iips": est.SlateIndependentIPS(len_list=len_list).estimate_policy_value(
            pscore_item_position=bf["pscore_item_position"], evaluation_policy_pscore_item_position=ps_ip, **kw),
        "rips": est.SlateRewardInteractionIPS(len_list=len_list).estimate_policy_value(
            pscore_cascade=bf["pscore_cascade"], evaluation_policy_pscore_cascade=ps_c, **kw),
        "cascade_dr": est.SlateCascadeDoublyRobust(len_list=len_list, n_unique_action=n_actions)
        .estimate_policy_value(action=bf["action"], pscore_cascade=bf["pscore_cascade"],
                               evaluation_policy_pscore_cascade=ps_c, q_hat=q_hat,
                               evaluation_policy_action_dist=dist, **kw),
    }
    return {"values": {k: float(v) for k, v in values.items()},
            "slate_id": bf["slate_id"].tolist(), "position": bf["position"].tolist(),
            "action": bf["action"].tolist(), "reward": bf["reward"].tolist(),
            "pscore_cascade": bf["pscore_cascade"].tolist(), "pscore_item_position": bf["pscore_item_position"].tolist(),
            "logit": logit.tolist(), "q_hat": q_hat.tolist(), "dist": dist.tolist()}


def _side_venv() -> tuple[Path | None, str]:
    venv = cache_root() / "obp-venv"
    py = venv / "bin" / "python"
    if py.exists():
        return py, ""
    base = next((shutil.which(p) for p in ("python3.11", "python3.10", "python3.9") if shutil.which(p)), None)
    if base is None:
        return None, "no python3.9-3.11 to build a side virtualenv for obp"
    try:
        subprocess.run([base, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "numpy<2", "scipy<1.14", "scikit-learn<1.6",
                        "pandas<2.3", "tqdm"], check=True, capture_output=True, timeout=1200)
        return py, ""
    except Exception as exc:
        shutil.rmtree(venv, ignore_errors=True)
        return None, f"the side virtualenv for obp could not be built ({type(exc).__name__})"


def reference(n_rounds: int = 400, n_actions: int = 8, len_list: int = 3, factorizable: bool = False,
              seed: int = 12345) -> tuple[dict | None, str]:
    """obp's data and estimates (in process, else in the side venv), or ``(None, reason)``."""
    src, why = obp_source()
    if src is None:
        return None, why
    try:
        return generate(src, n_rounds, n_actions, len_list, factorizable, seed), ""
    except Exception as exc:  # e.g. numpy 2 incompatibilities: run it where obp's pins hold
        first = f"{type(exc).__name__}: {str(exc)[:160]}"
    py, why = _side_venv()
    if py is None:
        return None, f"obp failed in process ({first}) and {why}"
    out = subprocess.run([str(py), __file__, str(src), str(n_rounds), str(n_actions), str(len_list),
                          str(int(factorizable)), str(seed)], capture_output=True, text=True, timeout=1200)
    if out.returncode != 0:
        return None, f"obp failed in process ({first}) and in the side venv: {out.stderr[-300:]}"
    return json.loads(out.stdout.strip().splitlines()[-1]), ""


if __name__ == "__main__":
    a = sys.argv[1:]
    print(json.dumps(generate(Path(a[0]), int(a[1]), int(a[2]), int(a[3]), bool(int(a[4])), int(a[5]))))
