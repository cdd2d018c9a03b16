"""The tasks and the evaluation suite: known answers in-process, then real CLI runs read back from result.json,
the W&B log, `aelab-eval` and `aelab-report`."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.distributions import Normal

from aelab.core.build import build
from aelab.data.base import InMemoryDataModule, Splits
from aelab.data.corruptions import GaussianNoise
from aelab.data.tasks import Colorize, Denoise, Task
from aelab.evals.anomaly import AnomalyDetection, calibrate_threshold, detection_metrics
from aelab.evals.likelihood import ImportanceWeightedNLL
from aelab.evals.restoration import Restoration
from helpers import FAST, compose_cfg, read_result, run_cli


# ---- tasks ---------------------------------------------------------------------------------------------------
def digits(task: Task | None = None, **kwargs) -> InMemoryDataModule:
    data = build(compose_cfg(["data=digits"]).data, task=task, **kwargs)
    data.setup()
    return data


def test_denoise_inputs_are_fixed_for_eval_and_fresh_for_training() -> None:
    a, b = digits(Denoise(GaussianNoise(0.3))), digits(Denoise(GaussianNoise(0.3)))
    val = a.fixed_batch("val", 50)
    assert torch.equal(val["x"], b.fixed_batch("val", 50)["x"]) and torch.equal(val["target"], a.val_set.x[:50])
    noise = val["x"] - val["target"]
    assert 0.15 < float(noise.std()) < 0.3  # std 0.3 before clipping to [0, 1]
    first, second = a.train_set[list(range(50))], a.train_set[list(range(50))]
    assert torch.equal(first["target"], second["target"]) and not torch.equal(first["x"], second["x"])


def test_colorize_input_is_the_luminance() -> None:
    rgb = torch.rand(4, 3, 5, 5)
    gray = Colorize().inputs(rgb)
    expected = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]  # ITU-R BT.601 luma
    assert gray.shape == rgb.shape and all(torch.allclose(gray[:, c], expected) for c in range(3))


def test_one_class_trains_on_the_normal_class_and_tests_on_all() -> None:
    data = digits(normal_classes=[3])
    assert set(data.train_set.y.tolist()) == {3} and set(data.val_set.y.tolist()) == {3}
    assert set(data.test_set.y.tolist()) == set(range(10))
    assert torch.equal(data.is_anomaly(data.test_set.y), data.test_set.y != 3)


# ---- anomaly detection ---------------------------------------------------------------------------------------
def test_detection_metrics_known_answers() -> None:
    labels = torch.tensor([False, True, False, True])
    # anomalies 2 and 4 against normals 1 and 3: 3 of 4 pairs ordered -> AUROC 3/4; AP = (1/1 + 2/3) / 2
    got = detection_metrics(torch.tensor([1.0, 2.0, 3.0, 4.0]), labels)
    assert got["auroc"] == pytest.approx(0.75) and got["auprc"] == pytest.approx((1 + 2 / 3) / 2)
    # large scores (NLLs in nats) must not be squashed as logits: shifting them changes nothing
    assert detection_metrics(torch.tensor([1.0, 2.0, 3.0, 4.0]) + 1000.0, labels) == got
    assert detection_metrics(torch.tensor([0.0, 9.0, 0.1, 8.0]), labels) == {"auroc": 1.0, "auprc": 1.0}


class Subspace(InMemoryDataModule):
    """Normal class 0 lies in a 2-D subspace of R^6, the anomalies (class 1) do not."""

    basis = torch.linalg.qr(torch.randn(6, 2, generator=torch.Generator().manual_seed(0)))[0]  # (6, 2) orthonormal

    def load(self) -> Splits:
        g = torch.Generator().manual_seed(1)
        normal = torch.randn(400, 2, generator=g) @ self.basis.T  # (400, 6) in the subspace
        anomalies = torch.randn(100, 6, generator=g)
        x = torch.cat([normal, anomalies])
        y = torch.cat([torch.zeros(400), torch.ones(100)]).long()
        return Splits(x_train=x[:300], y_train=y[:300], x_test=x, y_test=y)


def test_perfect_reconstruction_of_normals_gives_auroc_one(tmp_path: Path) -> None:
    """A linear AE that projects onto the normal subspace reconstructs normals exactly: AUROC = AUPRC = 1."""
    cfg = compose_cfg(["data=digits", "model=linear_ae", "model.latent_dim=2", "data.shape=[6]"])
    model = build(cfg.model).eval()
    encoder, decoder = model.bottleneck.proj, model.decoder.net[0]  # the only two layers: (6 -> 2), (2 -> 6)
    with torch.no_grad():
        encoder.weight.copy_(Subspace.basis.T), encoder.bias.zero_()
        decoder.weight.copy_(Subspace.basis), decoder.bias.zero_()
    data = Subspace(name="subspace", shape=[6], num_classes=2, val_size=50, normal_classes=[0])
    data.setup()
    got = AnomalyDetection()(model, data, tmp_path).metrics
    kept = ("test/auroc", "test/auprc", "test/anomaly_rate", "test/auroc_recon")
    assert {k: got[k] for k in kept} == {"test/auroc": 1.0, "test/auprc": 1.0, "test/anomaly_rate": pytest.approx(0.2),
                                         "test/auroc_recon": 1.0}


# ---- restoration ---------------------------------------------------------------------------------------------
class Identity(nn.Module):
    """A 'model' that returns its input: its output is exactly as good as the input."""

    device = torch.device("cpu")

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_restoration_of_an_identity_model_gains_nothing(tmp_path: Path) -> None:
    data = digits(Denoise(GaussianNoise(0.3), levels=[0.1]))
    got = Restoration()(Identity(), data, tmp_path).metrics
    assert got["test/psnr_gain"] == pytest.approx(0.0, abs=1e-5) and got["test/psnr_gain@0.1"] == pytest.approx(0.0, abs=1e-5)
    test = data.fixed_batch("test", len(data.test_set))
    mse = (test["x"] - test["target"]).pow(2).flatten(1).mean(1)  # per example
    assert got["test/psnr_input"] == pytest.approx(float((10 * torch.log10(1 / mse)).mean()), rel=1e-5)
    assert got["test/psnr_input@0.1"] > got["test/psnr_input"]  # less noise, higher PSNR


# ---- likelihood ----------------------------------------------------------------------------------------------
def test_iw_log_likelihood_with_one_sample_is_the_elbo_and_tightens_with_k() -> None:
    model = build(compose_cfg(["data=digits", "model=vae", "model/arch=mlp", "model.latent_dim=3"]).model).eval()
    x = digits().fixed_batch("test", 64)["x"]
    with torch.no_grad():
        torch.manual_seed(5)
        iw1 = model.iw_log_likelihood(x, x, k=1)
        torch.manual_seed(5)  # the same posterior draw, written out with torch.distributions
        mu, logvar = model.bottleneck.posterior(model.encoder(x))
        q = Normal(mu, torch.exp(0.5 * logvar))
        z = q.rsample((1,))[0]
        elbo = -model.likelihood.nll(model.decoder(z), x) + (Normal(0.0, 1.0).log_prob(z) - q.log_prob(z)).sum(-1)
        assert torch.allclose(iw1, elbo, atol=1e-4)
        torch.manual_seed(6)
        one = torch.stack([model.iw_log_likelihood(x, x, k=1) for _ in range(20)]).mean()
        hundred = model.iw_log_likelihood(x, x, k=100).mean()
    assert hundred > one  # log-mean-exp over samples: a tighter lower bound on log p(x)


def test_scoring_leaves_the_global_rng_alone_and_gives_the_same_numbers_from_any_state(tmp_path: Path) -> None:
    """The VAE's posterior draws in the anomaly scores, the threshold and the IW-NLL come from a seeded block:
    torch's global RNG state is as before the call, and the numbers do not depend on it."""
    model = build(compose_cfg(["data=digits", "model=vae", "model/arch=mlp", "model.latent_dim=3"]).model).eval()
    data = digits(normal_classes=[3])
    scorers = [lambda: AnomalyDetection()(model, data, tmp_path).metrics, lambda: calibrate_threshold(model, data, 0.05),
               lambda: ImportanceWeightedNLL(k=5, max_examples=100)(model, data, tmp_path).metrics]
    got = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        before = torch.get_rng_state()
        got.append([score() for score in scorers])
        assert torch.equal(torch.get_rng_state(), before)
    assert got[0] == got[1] and "test/auroc_elbo" in got[0][0]


# ---- end to end from the CLI -----------------------------------------------------------------------------------
def cli_run(tmp_path: Path, name: str, args: list[str], command: str = "aelab-train") -> dict:
    run = tmp_path / name
    out = run_cli(command, [*args, f"hydra.run.dir={run}"])
    assert out.returncode == 0, out.stderr[-3000:]
    return read_result(run)


@pytest.fixture(scope="module")
def one_class_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("one_class")
    out = run_cli("aelab-train", [*FAST, "task=one_class", "data.normal_classes=[0]", "model/arch=mlp", "model.latent_dim=4",
                                  "trainer.max_epochs=10", "callbacks.embeddings=null", f"hydra.run.dir={run}"])
    assert out.returncode == 0, out.stderr[-3000:]
    return run


@pytest.mark.slow
def test_one_class_run_reports_auroc_in_result_and_wandb(one_class_run: Path) -> None:
    result = read_result(one_class_run)
    auroc = result["metrics"]["test/auroc"]
    assert 0.8 < auroc <= 1.0 and result["run"]["task"] == "one_class"  # digit 0 against the rest
    assert any("probe skipped" in n for n in result["notes"])  # a single training class: no probe
    wandb_dir = Path(result["wandb_dir"])
    out = run_cli("wandb", ["leet", "inspect", "--summary", "--json", str(wandb_dir)])
    summary = json.loads(out.stdout)["summary"]
    assert summary["test/auroc"] == pytest.approx(auroc) and summary["test/auprc"] == pytest.approx(result["metrics"]["test/auprc"])


@pytest.mark.slow
def test_eval_of_the_checkpoint_reproduces_the_auroc(one_class_run: Path, tmp_path: Path) -> None:
    trained = read_result(one_class_run)["metrics"]
    result = cli_run(tmp_path, "eval", [f"ckpt_path={one_class_run}/checkpoints/best.ckpt", "eval=[anomaly]"], "aelab-eval")
    assert result["metrics"]["test/auroc"] == pytest.approx(trained["test/auroc"], abs=1e-9)


@pytest.mark.slow
def test_vae_run_reports_likelihood_probe_knn_and_frechet(tmp_path: Path) -> None:
    result = cli_run(tmp_path, "vae", [*FAST, "model=vae", "model/arch=mlp", "model.latent_dim=4", "trainer.max_epochs=3",
                                       "callbacks.embeddings=null", "logger=csv", "eval=[probe,likelihood,generation]",
                                       "eval.likelihood.k=20", "eval.generation.classifier_steps=200",
                                       f"eval.generation.cache_dir={tmp_path}/cache"])
    m = result["metrics"]
    assert 0.3 < m["test/probe_acc"] <= 1 and 0.3 < m["test/knn_acc"] <= 1  # 10 classes: chance is 0.1
    assert m["test/iw_nll"] < -m["test/elbo"] + 1e-3  # the k=20 bound is at least as tight as the ELBO, on average
    assert m["test/frechet_clf"] > m["test/frechet_clf_train"] >= 0  # samples are further from test images than real ones
    ways = result["higher_is_better"]
    assert ways["test/frechet_clf"] is False and ways["test/frechet_clf_train"] is None  # the floor is not ranked
    assert (tmp_path / "cache" / "digits_1x8x8.pt").is_file()
    for png in ("eval_samples.png", "interpolations.png", "traversals.png"):
        assert (tmp_path / "vae" / png).stat().st_size > 0


@pytest.mark.slow
def test_denoise_run_reports_the_psnr_gain(tmp_path: Path) -> None:
    result = cli_run(tmp_path, "denoise", [*FAST, "task=denoise", "task.levels=[0.5]", "model/arch=mlp", "trainer.max_epochs=2",
                                           "logger=csv", "eval=[restoration]", "callbacks.embeddings=null"])
    m = result["metrics"]
    assert m["test/psnr_gain"] == pytest.approx(m["test/psnr_output"] - m["test/psnr_input"])
    assert m["test/psnr_input@0.5"] < m["test/psnr_input"]  # noisier input at std 0.5 than at the task's 0.3


@pytest.mark.slow
def test_csv_anomaly_path_on_the_bundled_table(tmp_path: Path) -> None:
    """Run from a folder without the table: the preset writes scikit-learn's copy to data.path first."""
    table = tmp_path / "breast_cancer.csv"
    result = cli_run(tmp_path, "csv", ["experiment=breast_cancer_anomaly", f"data.path={table}", "trainer.max_epochs=30",
                                       "logger=csv", "callbacks.progress=null"])
    with table.open() as f:
        assert sum(row["diagnosis"] == "malignant" for row in csv.DictReader(f)) == 212
    assert result["metrics"]["test/auroc"] > 0.8 and result["run"]["data"] == "breast_cancer"


@pytest.mark.slow
def test_shapes_run_reports_mig_and_dci_and_the_report_has_the_columns(tmp_path: Path) -> None:
    cli_run(tmp_path / "sweep", "shapes", ["experiment=shapes_beta_vae", f"data.root={tmp_path}/shapes", "trainer.max_epochs=1",
                                           "model/arch=mlp", "logger=csv", "callbacks.progress=null", "callbacks.embeddings=null",
                                           "eval.disentanglement.max_examples=600"])
    result = read_result(tmp_path / "sweep" / "shapes")
    m = result["metrics"]
    assert all(0 <= m[k] <= 1 for k in ("test/mig", "test/dci_disentanglement", "test/dci_completeness"))
    assert 1 / 3 - 0.1 < m["test/dci_informativeness"] <= 1  # factor prediction accuracy, chance ~1/8 to 1/3
    assert all(0 <= m[f"test/{k}"] <= 1 for k in ("beta_vae_score", "factor_vae_score", "sap", "modularity", "explicitness"))
    out = run_cli("aelab-report", [str(tmp_path / "sweep")])
    assert out.returncode == 0, out.stderr
    header = (tmp_path / "sweep" / "report.csv").read_text().splitlines()[0]
    assert all(f"test/{k}_mean" in header for k in ("mig", "dci_disentanglement", "probe_acc"))
    assert not math.isnan(float((tmp_path / "sweep" / "report.csv").read_text().splitlines()[1].split(",")[header.split(",").index("test/mig_mean")]))
