"""Zero-shot start, L2-SP, unbiased epoch selection, listwise / lambdarank / click-model objectives."""

import numpy as np
import pytest
import torch

from causalrec.errors import InputError
from causalrec.ranking import TrainConfig, TwoTowerRanker, dcg_per_list, train_ranker

USERS = np.array(["user likes jazz piano", "user likes coffee tea", "user likes running shoes"])
ITEMS = np.array(["jazz piano", "coffee tea", "running shoes", "red lamp"])


def _lists(n_req=80, seed=0):
    """Each user likes the item *after* the one its text names: the zero-shot cosine ranks it wrongly."""
    rng = np.random.default_rng(seed)
    u = np.repeat(rng.integers(0, 3, n_req), 4)
    i = np.tile(np.arange(4), n_req)
    return USERS[u], ITEMS[i], (i == (u + 1) % 3).astype(float), np.repeat(np.arange(n_req), 4)


def _cfg(**kw):
    base = dict(epochs=3, max_length=16, batch_size=8, seed=0, device="cpu", trainable_layers=0, head_lr=2e-2)
    base.update(kw)
    return TrainConfig(**base)


def _zero_shot_scores(enc, u, i):
    return TwoTowerRanker.from_encoder(enc, max_length=16, trainable_layers=0).score(list(u), list(i))


def test_epochs_zero_is_the_zero_shot_cosine(tiny_encoder_dir):
    u, i, y, g = _lists(10)
    model, hist = train_ranker(u, i, y, groups=g, encoder=tiny_encoder_dir, config=_cfg(epochs=0))
    assert hist.losses == [] and model.meta["objective"] == "zero_shot"
    # the score is exp(log_scale) * cosine of the mean-pooled encoder vectors (+ zero prior and bias)
    from causalrec.features import TextEmbedder

    emb = TextEmbedder(model=tiny_encoder_dir, max_length=16, cache_dir=False)
    cos = (emb.encode(list(u)) * emb.encode(list(i))).sum(1)
    np.testing.assert_allclose(model.score(list(u), list(i)), 5.0 * cos, rtol=1e-4, atol=1e-5)


def test_noise_labels_keep_the_zero_shot_scorer(tiny_encoder_dir):
    u, i, _, g = _lists(80)
    noise = np.random.default_rng(3).binomial(1, 0.3, u.size).astype(float)
    model, hist = train_ranker(u, i, noise, groups=g, encoder=tiny_encoder_dir, config=_cfg(objective="listwise"))
    assert [r["epoch"] for r in hist.val_curve] == [0, 1, 2, 3]
    assert hist.best_epoch == 0, hist.val_curve
    np.testing.assert_allclose(model.score(list(u), list(i)), _zero_shot_scores(tiny_encoder_dir, u, i),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("objective", ["listwise", "lambdarank", "pointwise"])
def test_informative_labels_replace_the_zero_shot_scorer(tiny_encoder_dir, objective):
    u, i, y, g = _lists(80)
    model, hist = train_ranker(u, i, y, groups=g, encoder=tiny_encoder_dir,
                               config=_cfg(objective=objective, epochs=4, batch_size=32 if objective == "pointwise" else 8))
    assert hist.best_epoch > 0, hist.val_curve
    best = hist.val_curve[hist.best_epoch]
    assert best["gain_vs_zero_shot"] >= best["gain_se"] > 0
    trained = dcg_per_list(model.score(list(u), list(i)), y, g, k=2).mean()
    zero = dcg_per_list(_zero_shot_scores(tiny_encoder_dir, u, i), y, g, k=2).mean()
    assert trained > zero + 0.05, (trained, zero)


def test_listwise_loss_is_invariant_to_scaling_the_gains(tiny_encoder_dir):
    u, i, y, g = _lists(40)
    a, _ = train_ranker(u, i, y, groups=g, encoder=tiny_encoder_dir, config=_cfg(objective="listwise", val_share=0))
    b, _ = train_ranker(u, i, 4.0 * y, groups=g, encoder=tiny_encoder_dir,
                        config=_cfg(objective="listwise", val_share=0))
    for k, v in a.state_dict().items():
        torch.testing.assert_close(v, b.state_dict()[k], rtol=1e-4, atol=1e-5)


def test_reg_pulls_the_correction_toward_zero_shot(tiny_encoder_dir):
    u, i, y, g = _lists(80)
    eye = None
    dist = {}
    for reg in (0.0, 1.0):
        m, _ = train_ranker(u, i, y, groups=g, encoder=tiny_encoder_dir,
                            config=_cfg(objective="listwise", reg=reg, val_share=0))
        eye = torch.eye(m.proj.weight.shape[0])
        dist[reg] = float(((m.proj.weight.detach() - eye) ** 2).sum() + (m.item_bias.weight.detach() ** 2).sum())
    assert dist[1.0] < 0.5 * dist[0.0], dist


def _click_data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    uu, ii = rng.integers(0, 3, n), rng.integers(0, 4, n)
    pos = rng.integers(0, 3, n)  # random slots: examination identified
    rel = np.where(uu == ii, 0.9, 0.1)
    click = (rng.random(n) < rel * THETA[pos]).astype(float)
    return USERS[uu], ITEMS[ii], click, np.arange(n) // 3, pos


THETA = np.array([1.0, 0.5, 0.25])


@pytest.mark.slow
def test_click_model_learns_the_examination_on_random_slots(tiny_encoder_dir):
    u, i, click, g, pos = _click_data()
    cfg = _cfg(objective="click_model", epochs=6, batch_size=64, head_lr=5e-2, reg=0.0)
    model, _ = train_ranker(u, i, click, groups=g, positions=pos, encoder=tiny_encoder_dir, config=cfg)
    ex = np.asarray(model.meta["examination"])
    assert np.max(np.abs(ex - THETA)) < 0.12, ex


@pytest.mark.slow
def test_click_model_learns_one_examination_tower_per_context(tiny_encoder_dir):
    """Two contexts with different curves on random slots: each tower recovers its own context's curve."""
    u, i, _, g, pos = _click_data(12_000, seed=3)
    rng = np.random.default_rng(4)
    ctx = np.where(np.arange(pos.size) % 2 == 0, "mobile", "desktop")
    theta = {"mobile": THETA, "desktop": np.array([1.0, 0.85, 0.7])}
    # the relevance of _click_data: a user and an item with the same index match
    uu = (u[:, None] == USERS[None, :]).argmax(axis=1)
    ii = (i[:, None] == ITEMS[None, :]).argmax(axis=1)
    rel = np.where(uu == ii, 0.9, 0.1)
    ex_row = np.where(ctx == "mobile", THETA[pos], theta["desktop"][pos])
    click = (rng.random(pos.size) < rel * ex_row).astype(float)
    cfg = _cfg(objective="click_model", epochs=6, batch_size=64, head_lr=5e-2, reg=0.0)
    model, _ = train_ranker(u, i, click, groups=g, positions=pos, exam_contexts=ctx, encoder=tiny_encoder_dir,
                            config=cfg)
    by = model.meta["examination_by_context"]
    assert sorted(by) == ["desktop", "mobile"] and "examination" not in model.meta
    for c, truth in theta.items():
        assert np.max(np.abs(np.asarray(by[c]) - truth)) < 0.12, (c, by[c])
    # one pooled tower would give both contexts the same curve
    assert by["desktop"][2] - by["mobile"][2] > 0.3, by


def test_examination_contexts_meta_and_errors(tiny_encoder_dir):
    u, i, click, g, pos = _click_data(600)
    ctx = np.where(np.arange(pos.size) % 2 == 0, "mobile", "desktop")
    cfg = _cfg(objective="click_model", epochs=1, batch_size=64)
    model, _ = train_ranker(u, i, click, groups=g, positions=pos, exam_contexts=ctx, encoder=tiny_encoder_dir,
                            config=cfg)
    by = model.meta["examination_by_context"]
    assert sorted(by) == ["desktop", "mobile"] and all(len(v) == 3 and v[0] == 1.0 for v in by.values())
    with pytest.raises(InputError, match="examination contexts"):
        train_ranker(u, i, click, groups=g, positions=pos, exam_contexts=ctx, examination=THETA,
                     encoder=tiny_encoder_dir, config=cfg)
    with pytest.raises(InputError, match="examination contexts"):
        train_ranker(u, i, click, groups=g, exam_contexts=ctx, encoder=tiny_encoder_dir,
                     config=_cfg(objective="listwise"))
    with pytest.raises(InputError, match="one non-missing value per row"):
        train_ranker(u, i, click, groups=g, positions=pos, exam_contexts=ctx[:10], encoder=tiny_encoder_dir,
                     config=cfg)


def test_click_model_with_a_fixed_examination_and_its_errors(tiny_encoder_dir):
    u, i, click, g, pos = _click_data(600)
    cfg = _cfg(objective="click_model", epochs=1, batch_size=64)
    fixed, _ = train_ranker(u, i, click, groups=g, positions=pos, examination=THETA, encoder=tiny_encoder_dir,
                            config=cfg)
    np.testing.assert_allclose(fixed.meta["examination"], THETA, rtol=1e-6)
    assert fixed.meta["examination_fixed"] is True
    with pytest.raises(InputError, match="position"):
        train_ranker(u, i, click, encoder=tiny_encoder_dir, config=cfg)
    with pytest.raises(InputError, match="0/1 clicks"):
        train_ranker(u, i, click / 0.5, positions=pos, encoder=tiny_encoder_dir, config=cfg)
    with pytest.raises(InputError, match="examination"):
        train_ranker(u, i, click, positions=pos, examination=[1.0, 0.5], encoder=tiny_encoder_dir, config=cfg)


def test_click_model_validates_on_clicks_over_rho_when_the_curve_is_given(tiny_encoder_dir):
    from causalrec.ranking.train import _group_codes, _split_lists

    u, i, click, g, pos = _click_data(600)
    cfg = _cfg(objective="click_model", epochs=1, batch_size=64)
    _, hist = train_ranker(u, i, click, groups=g, positions=pos, examination=THETA, encoder=tiny_encoder_dir,
                           config=cfg)
    assert "rho_k" in hist.val_gains and not any("position-biased" in n for n in hist.notes)
    # epoch 0 (the zero-shot scorer) scored by held-out DCG@10 with gains click / rho_k
    va = _split_lists(_group_codes(g), cfg.val_share, cfg.seed)
    zs = _zero_shot_scores(tiny_encoder_dir, u[va], i[va])
    want = dcg_per_list(zs, click[va] / THETA[pos[va]], g[va], k=cfg.val_k).mean()
    assert hist.val_curve[0]["val_dcg"] == pytest.approx(want, rel=1e-5)
    # without the curve (and no validation labels) the raw clicks are used, and a note says it is biased
    _, h2 = train_ranker(u, i, click, groups=g, positions=pos, encoder=tiny_encoder_dir, config=cfg)
    assert h2.val_gains == "training labels" and any("position-biased" in n for n in h2.notes)


def test_click_model_positions_starting_at_one_name_the_position_base(tiny_encoder_dir):
    u, i, click, g, pos = _click_data(300)
    with pytest.raises(InputError, match="--position-base 1"):
        train_ranker(u, i, click, groups=g, positions=pos + 1, encoder=tiny_encoder_dir,
                     config=_cfg(objective="click_model", epochs=1))


def test_dcg_per_list_by_hand():
    s = np.array([0.9, 0.1, 0.5, 0.3, 0.2])
    gain = np.array([1.0, 2.0, 0.0, -1.0, 3.0])
    grp = np.array([0, 0, 0, 1, 1])
    d = dcg_per_list(s, gain, grp, k=2)
    assert d[0] == pytest.approx(1.0 / np.log2(2) + 0.0 / np.log2(3))
    assert d[1] == pytest.approx(-1.0 / np.log2(2) + 3.0 / np.log2(3))


def test_bad_config():
    with pytest.raises(InputError, match="epochs"):
        TrainConfig(epochs=-1)
    with pytest.raises(InputError, match="val_share"):
        TrainConfig(val_share=1.0)
    with pytest.raises(InputError, match="objective"):
        TrainConfig(objective="listnet")


def test_click_model_selects_on_held_out_click_loglik_and_stops_early(tiny_encoder_dir):
    from causalrec.ranking.train import _group_codes, _split_lists

    u, i, click, g, pos = _click_data(900)
    cfg = _cfg(objective="click_model", epochs=40, batch_size=64, head_lr=5e-2, patience=2)
    model, hist = train_ranker(u, i, click, groups=g, positions=pos, examination=THETA, encoder=tiny_encoder_dir,
                               config=cfg)
    nll = [r["val_nll"] for r in hist.val_curve]
    # epoch 0: the zero-shot scorer's held-out NLL of the clicks under p = sigma(s) * rho_k, by hand
    va = _split_lists(_group_codes(g), cfg.val_share, cfg.seed)
    p = THETA[pos[va]] / (1.0 + np.exp(-_zero_shot_scores(tiny_encoder_dir, u[va], i[va])))
    want = -np.mean(click[va] * np.log(p) + (1 - click[va]) * np.log1p(-p))
    assert nll[0] == pytest.approx(want, rel=1e-4)
    # early stopping: the run ended `patience` epochs after the best held-out likelihood, before the budget
    best_nll_epoch = int(np.argmin(nll))
    assert len(nll) - 1 == best_nll_epoch + cfg.patience < cfg.epochs, nll
    assert any("early stop" in n for n in hist.notes)
    # the chosen epoch is the likelihood-best one when it passes the DCG gate, else an earlier one
    best = hist.val_curve[best_nll_epoch]
    if best["gain_vs_zero_shot"] >= best["gain_se"]:
        assert hist.best_epoch == best_nll_epoch
    else:
        assert hist.best_epoch < best_nll_epoch
    assert model.meta["best_epoch"] == hist.best_epoch


def test_select_by_and_patience_are_checked():
    with pytest.raises(InputError, match="click_model"):
        TrainConfig(objective="listwise", select_by="loglik")
    with pytest.raises(InputError, match="select_by"):
        TrainConfig(select_by="ndcg")
    with pytest.raises(InputError, match="patience"):
        TrainConfig(patience=0)


def test_ema_weights_are_the_moving_average_of_the_iterates(tiny_encoder_dir):
    """One step per epoch (batch = all rows) and a horizon of 2 passes: decay 1/2 per step, from the start."""
    u, i, y, g = _lists(20)
    n = u.size
    kw = dict(objective="pointwise", batch_size=n, val_share=0.0)
    start = TwoTowerRanker.from_encoder(tiny_encoder_dir, max_length=16, trainable_layers=0).state_dict()
    raw1, _ = train_ranker(u, i, y, groups=g, encoder=tiny_encoder_dir, config=_cfg(epochs=1, ema_epochs=0.0, **kw))
    raw2, _ = train_ranker(u, i, y, groups=g, encoder=tiny_encoder_dir, config=_cfg(epochs=2, ema_epochs=0.0, **kw))
    avg2, hist = train_ranker(u, i, y, groups=g, encoder=tiny_encoder_dir,
                              config=_cfg(epochs=2, ema_epochs=2.0, **kw))
    assert hist.config["ema_epochs"] == 2.0 and avg2.meta["ema_epochs"] == 2.0
    w1, w2 = raw1.state_dict(), raw2.state_dict()
    for k in ("proj.weight", "proj.bias", "item_bias.weight", "log_scale", "bias"):
        want = 0.5 * (0.5 * start[k] + 0.5 * w1[k]) + 0.5 * w2[k]
        torch.testing.assert_close(avg2.state_dict()[k], want, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(w2["proj.weight"], avg2.state_dict()["proj.weight"])  # the average is not the iterate


def test_ema_default_is_on_for_the_click_model_only(tiny_encoder_dir):
    u, i, y, g = _lists(40)
    a, ha = train_ranker(u, i, y, groups=g, encoder=tiny_encoder_dir, config=_cfg(objective="listwise"))
    b, _ = train_ranker(u, i, y, groups=g, encoder=tiny_encoder_dir, config=_cfg(objective="listwise", ema_epochs=0))
    assert ha.config["ema_epochs"] == 0.0
    for k, v in a.state_dict().items():  # auto = off for the reweighting objectives: unchanged training
        torch.testing.assert_close(v, b.state_dict()[k])
    # clicks on the item *after* the one the user text names (the zero-shot cosine ranks it wrongly)
    rng = np.random.default_rng(1)
    uu, ii, pos = rng.integers(0, 3, 3000), rng.integers(0, 4, 3000), rng.integers(0, 3, 3000)
    click = (rng.random(3000) < np.where(ii == (uu + 1) % 3, 0.9, 0.1) * THETA[pos]).astype(float)
    uc, ic, gc = USERS[uu], ITEMS[ii], np.arange(3000) // 3
    m, hc = train_ranker(uc, ic, click, groups=gc, positions=pos, examination=THETA, encoder=tiny_encoder_dir,
                         config=_cfg(objective="click_model", epochs=6, batch_size=64, head_lr=5e-2, refit=False))
    assert hc.config["ema_epochs"] == 2.0 and m.meta["ema_epochs"] == 2.0
    # the validation curve scores the averaged weights, and the chosen epoch's averaged weights are returned:
    # the returned model's held-out click NLL, by hand, is the curve's value at the chosen epoch
    from causalrec.ranking.train import _group_codes, _split_lists

    assert hc.best_epoch > 0, hc.val_curve
    va = _split_lists(_group_codes(gc), 0.2, 0)
    p = THETA[pos[va]] / (1.0 + np.exp(-m.score(list(uc[va]), list(ic[va]))))
    nll = -np.mean(click[va] * np.log(p) + (1 - click[va]) * np.log1p(-p))
    assert hc.val_curve[hc.best_epoch]["val_nll"] == pytest.approx(nll, rel=1e-4)
    _, h2 = train_ranker(uc, ic, click, groups=gc, positions=pos, examination=THETA, encoder=tiny_encoder_dir,
                         config=_cfg(objective="click_model", epochs=6, batch_size=64, head_lr=5e-2, ema_epochs=0,
                                     refit=False))
    assert h2.config["ema_epochs"] == 0.0
    assert h2.val_curve[1]["val_nll"] != pytest.approx(hc.val_curve[1]["val_nll"], rel=1e-6)
    with pytest.raises(InputError, match="ema_epochs"):
        TrainConfig(ema_epochs=-1.0)


def test_refit_retrains_on_every_row_for_the_chosen_epochs(tiny_encoder_dir):
    u, i, y, g = _lists(80)
    m, h = train_ranker(u, i, y, groups=g, encoder=tiny_encoder_dir, config=_cfg(objective="listwise", epochs=4,
                                                                               refit=True))
    assert h.best_epoch > 0 and h.config["refit"] is True, h.val_curve
    assert len(h.refit_losses) == h.best_epoch and m.meta["refit"] is True and m.meta["refit_rows"] == u.size
    # the same as training from the start on all rows (no held-out lists) for the chosen number of epochs
    ref, rh = train_ranker(u, i, y, groups=g, encoder=tiny_encoder_dir,
                           config=_cfg(objective="listwise", epochs=h.best_epoch, val_share=0.0))
    assert rh.n_rows == u.size > h.n_rows
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(m.state_dict()[k], v)
    # the default: off for the reweighting objectives, on for the click model
    _, h_off = train_ranker(u, i, y, groups=g, encoder=tiny_encoder_dir, config=_cfg(objective="listwise", epochs=1))
    assert h_off.config["refit"] is False and h_off.refit_losses == []


def test_no_refit_when_the_zero_shot_scorer_is_kept(tiny_encoder_dir):
    u, i, _, g = _lists(80)
    noise = np.random.default_rng(3).binomial(1, 0.3, u.size).astype(float)
    model, hist = train_ranker(u, i, noise, groups=g, encoder=tiny_encoder_dir,
                               config=_cfg(objective="listwise", refit=True))
    assert hist.best_epoch == 0 and hist.refit_losses == [] and "refit" not in model.meta
    np.testing.assert_allclose(model.score(list(u), list(i)), _zero_shot_scores(tiny_encoder_dir, u, i),
                               rtol=1e-5, atol=1e-6)
