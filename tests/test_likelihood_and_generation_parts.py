"""The pieces of the likelihood and generation tables (Burda et al. 2016; Dai & Wipf 2019): dynamic binarisation,
active units, the two-stage sampler, precision/recall, Inception FID from a local weights file, and the report's
ranks and claims. Known answers throughout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from aelab.core.build import build
from aelab.densities import TwoStageVAE
from aelab.evals.likelihood import active_units
from aelab.metrics.precision_recall import precision_recall
from aelab.reporting import published as paper
from aelab.reporting.report import report
from helpers import compose_cfg, write_run


# ---- data ------------------------------------------------------------------------------------------------------
def binarised_digits(mode: str):
    data = build(compose_cfg(["data=digits", f"+data.binarize={mode}"]).data)
    data.setup()
    return data


def test_dynamic_binarisation_draws_anew_each_epoch_and_keeps_the_test_set_fixed() -> None:
    data = binarised_digits("dynamic")
    idx = list(range(len(data.train_set)))
    first, second = data.train_set[idx]["target"], data.train_set[idx]["target"]
    assert set(first.unique().tolist()) <= {0.0, 1.0} and not torch.equal(first, second)  # a new draw each pass
    mean_draw = torch.stack([data.train_set[idx]["target"] for _ in range(200)]).mean(0)
    assert torch.allclose(mean_draw, data.train_set.x, atol=0.15)  # Bernoulli(intensity): the mean is the intensity
    test = data.fixed_batch("test", 100)["target"]
    assert set(test.unique().tolist()) <= {0.0, 1.0} and torch.equal(test, data.fixed_batch("test", 100)["target"])
    assert torch.equal(test, binarised_digits("dynamic").fixed_batch("test", 100)["target"])  # the same in every run
    static = binarised_digits("static")
    assert torch.equal(static.train_set[idx]["target"], static.train_set[idx]["target"])


def test_unknown_binarisation_is_one_clear_error() -> None:
    from aelab.core.errors import ConfigError

    with pytest.raises(ConfigError, match="data.binarize must be one of"):
        binarised_digits("sometimes")


# ---- likelihood table ------------------------------------------------------------------------------------------
def test_active_units_count_posterior_means_that_vary_across_inputs() -> None:
    g = torch.Generator().manual_seed(0)
    means = torch.zeros(5000, 6)
    means[:, 0] = torch.randn(5000, generator=g)  # variance 1: active
    means[:, 1] = 0.2 * torch.randn(5000, generator=g)  # variance 0.04: active
    means[:, 2] = 0.05 * torch.randn(5000, generator=g)  # variance 0.0025: inactive (collapsed to the prior)
    means[:, 3] = 3.0  # constant mean: inactive
    means[:, 4] = 0.09 * torch.randn(5000, generator=g)  # variance 0.0081, just below 0.01
    means[:, 5] = 0.11 * torch.randn(5000, generator=g)  # variance 0.0121, just above
    assert active_units(means) == 3 and active_units(means, threshold=0.001) == 5


# ---- generation table ------------------------------------------------------------------------------------------
def test_two_stage_sampler_is_trained_on_first_stage_codes_and_samples_their_distribution() -> None:
    g = torch.Generator().manual_seed(0)
    codes = torch.randn(4000, 4, generator=g) @ torch.tensor([[2.0, 0, 0, 0], [1.0, 0.5, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0.1]])
    codes = codes + torch.tensor([5.0, -3.0, 0.0, 1.0])
    density = TwoStageVAE(hidden=[64, 64], steps=1500, batch_size=256).fit(codes)
    samples = density.sample(4000)
    assert samples.shape == (4000, 4) and torch.isfinite(samples).all()
    assert torch.allclose(samples.mean(0), codes.mean(0), atol=0.3)  # the codes' location and spread, not N(0, I)
    assert torch.allclose(samples.std(0), codes.std(0), rtol=0.3)
    corr = torch.corrcoef(samples.T)[0, 1]
    assert abs(float(corr) - float(torch.corrcoef(codes.T)[0, 1])) < 0.15  # their correlation too
    inside, outside = density.log_prob(codes[:200]).mean(), density.log_prob(codes[:200] + 20.0).mean()
    assert inside > outside + 50  # codes like the training ones are far more likely than shifted ones


def test_two_stage_vae_samples_through_both_stages() -> None:
    cfg = compose_cfg(["data=digits", "model=two_stage_vae", "model/arch=mlp", "model.latent_dim=3", "model.density.steps=20"])
    model = build(cfg.model).eval()
    x = torch.rand(64, 1, 8, 8)
    assert model.samples_from_density and model.bottleneck.has_prior  # a prior exists, but sampling skips it
    with pytest.raises(RuntimeError, match="not fitted"):
        model.sample(2)
    model.fit_density(model.encode(x))
    assert model.sample(9).shape == (9, 1, 8, 8)
    assert not build(compose_cfg(["data=digits", "model=vae"]).model).samples_from_density


def test_precision_recall_known_answers() -> None:
    g = torch.Generator().manual_seed(0)
    real = torch.randn(600, 8, generator=g)
    assert precision_recall(real, real) == {"precision": 1.0, "recall": 1.0}  # a set against itself
    assert precision_recall(real, real + 100.0) == {"precision": 0.0, "recall": 0.0}  # disjoint sets
    # two modes in the real set; the samples cover one of them: every sample looks real, half the data is missed
    two_modes = torch.cat([torch.randn(300, 8, generator=g), torch.randn(300, 8, generator=g) + 50.0])
    one_mode = torch.randn(300, 8, generator=g)
    pr = precision_recall(two_modes, one_mode)
    assert pr["precision"] > 0.8 and pr["recall"] < 0.55  # (a finite sample of the same mode is not all inside)


def test_inception_fid_runs_from_a_local_weights_file(tmp_path: Path) -> None:
    """A randomly initialised Inception of the right shape, written by the test: the file path is what is tested."""
    from unittest import mock

    pytest.importorskip("torch_fidelity")
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    from aelab.evals.generation import inception_fid

    with mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None), \
            mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: None):
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])  # layers built, weights left random
    weights = tmp_path / "inception.pth"
    torch.save(net.state_dict(), weights)
    g = torch.Generator().manual_seed(0)
    real, fake = torch.rand(12, 1, 28, 28, generator=g), torch.rand(12, 1, 28, 28, generator=g)
    same, note = inception_fid(real, real, weights)
    assert same is not None and abs(same) < 1e-2 and str(weights) in note  # identical sets: zero distance
    shifted, _ = inception_fid(fake * 0.2, real, weights)
    assert shifted > same
    missing, note = inception_fid(real, real, tmp_path / "absent.pth")
    assert missing is None and "no Inception weights file" in note


# ---- the report's ranks and claims -----------------------------------------------------------------------------
REFERENCE = {"name": "toy_gen", "title": "Toy generation", "citation": "A. Author (2020)", "table": "Table 1",
             "metric": "test/frechet_clf", "compare": "rank", "protocol": "theirs",
             "differences": "ours",
             "rows": [{"method": "A", "match": {"model": "a"}, "value": 30.0, "comparable": False},
                      {"method": "B", "match": {"model": "b"}, "value": 40.0, "comparable": False},
                      {"method": "C", "match": {"model": "c"}, "value": 100.0, "comparable": False}],
             "claims": [{"claim": "a beats b", "metric": "test/frechet_clf", "lower": {"model": "a"}, "than": {"model": "b"}},
                        {"claim": "c beats a", "metric": "test/frechet_clf", "lower": {"model": "c"}, "than": {"model": "a"}},
                        {"claim": "a has more units", "metric": "test/units", "higher": {"model": "a"}, "than": {"model": "b"}},
                        {"claim": "d beats a", "metric": "test/frechet_clf", "lower": {"model": "d"}, "than": {"model": "a"}}]}


def test_ranks_and_claims_in_the_report(tmp_path: Path) -> None:
    values = {"a": [5.0, 6.0], "b": [5.5, 9.0], "c": [2.0, 3.0]}  # ours: c best, then a, then b
    job = 0
    for model, per_seed in values.items():
        for seed, v in enumerate(per_seed):
            write_run(tmp_path, job, {"model": model, "latent_dim": 64}, {"test/frechet_clf": v, "test/units": 10 + v},
                      {"test/frechet_clf": False, "test/units": None}, seed=seed, reference=REFERENCE)
            job += 1
    out = report(tmp_path)
    lines = {r["method"]: r for r in paper.csv.DictReader(open(out["comparison"]))}
    assert (lines["A"]["ours_rank"], lines["A"]["paper_rank"]) == ("2", "1")
    assert (lines["C"]["ours_rank"], lines["C"]["paper_rank"]) == ("1", "3") and lines["C"]["difference"] == ""
    claims = {c["claim"]: c for c in json.loads(out["paper"].read_text())["claims"]}
    assert claims["a beats b"]["verdict"] == "holds" and not claims["a beats b"]["apart"]  # 5.5 < 6: seeds overlap
    assert claims["c beats a"]["verdict"] == "holds" and claims["c beats a"]["apart"]
    assert claims["a has more units"]["verdict"] == "fails"  # 15.5 < 17.25
    assert claims["d beats a"]["verdict"] == "not run"
    md = out["md"].read_text()
    assert md.splitlines()[0] == "| model | latent_dim | test/frechet_clf ↓ | test/units |"  # a claim's metric shown
    assert "rank 2 (paper 1)" in md and "| c beats a | test/frechet_clf | 2.5 | 5.5 | holds (every seed) |" in md
    page = paper.publish(tmp_path, tmp_path / "results").read_text()
    assert "rank 1 (paper 3)" in page and "| a beats b | test/frechet_clf | 5.5 | 7.25 | holds (means only) |" in page


def test_gmm_draws_differ_between_calls_and_follow_the_torch_seed() -> None:
    """The generation evaluator samples in batches: each batch must be a new draw (scikit-learn alone would repeat it)."""
    from aelab.densities import LatentGMM

    density = LatentGMM(3).fit(torch.randn(500, 4, generator=torch.Generator().manual_seed(0)))
    assert not torch.equal(density.sample(100), density.sample(100))
    torch.manual_seed(1)
    first = density.sample(10)
    torch.manual_seed(1)
    assert torch.equal(first, density.sample(10))
