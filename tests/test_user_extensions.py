"""A researcher's own project extends aelab through Hydra's search path: YAML-only variants and own Python parts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import make_project, read_result, run_cli

PYTHONPATH = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("my_project"))


def train_in(project: Path, out: Path, *args: str):
    return run_cli("aelab-train", [f"hydra.searchpath=[file://{project}/conf]", "data=digits", "model/arch=mlp",
                                   "trainer.max_epochs=1", "logger=none", "eval=none", "callbacks.progress=null",
                                   f"hydra.run.dir={out}", *args], env={"PYTHONPATH": os.pathsep.join([str(project), *PYTHONPATH])},
                   cwd=project)


@pytest.mark.parametrize("variant,term", [("half_kl_vae", "val/kl"), ("noisy_ae", "val/code_l2")])
def test_a_users_variant_trains_from_their_own_folder(project: Path, tmp_path: Path, variant: str, term: str) -> None:
    result = train_in(project, tmp_path, f"model={variant}")
    assert result.returncode == 0, result.stderr[-3000:]
    record = read_result(tmp_path)
    assert record["state"] == "completed" and record["run"]["model"] == variant and term in record["metrics"]


def test_unknown_choice_lists_the_users_options_too(project: Path, tmp_path: Path) -> None:
    result = train_in(project, tmp_path, "model=half_kl_vea")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "unknown model 'half_kl_vea'" in result.stderr and "half_kl_vae" in result.stderr and "vq_vae" in result.stderr


@pytest.mark.slow
def test_help_lists_the_users_options(project: Path) -> None:
    result = run_cli("aelab-train", [f"hydra.searchpath=[file://{project}/conf]", "--help"])
    model_line = next(line for line in result.stdout.splitlines() if line.strip().startswith("model "))
    assert "half_kl_vae" in model_line and "noisy_ae" in model_line and "vae" in model_line
    result = run_cli("aelab-train", ["--config-dir", str(project / "conf"), "--help"])
    assert "noisy_ae" in result.stdout


# ---- a damaged result.json (truncated by a crash or a full disk) ------------------------------------------------
@pytest.mark.slow
def test_a_truncated_record_is_kept_aside_and_the_job_runs_again(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text('{"state": "compl')
    args = ["data=digits", "model/arch=mlp", "trainer.max_epochs=1", "logger=none", "eval=none", "callbacks.progress=null",
            f"hydra.run.dir={tmp_path}"]
    result = run_cli("aelab-train", args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_result(tmp_path)["state"] == "completed"
    kept = list(tmp_path.glob("result.damaged-*.json"))
    assert len(kept) == 1 and kept[0].read_text() == '{"state": "compl'
    assert "result.json is not a readable record" in result.stdout + result.stderr + (tmp_path / "train.log").read_text()


def test_the_report_lists_a_damaged_record(tmp_path: Path) -> None:
    import json

    from aelab.reporting.report import report

    good = {"state": "completed", "metrics": {"test/mse": 0.1}, "higher_is_better": {"test/mse": False}, "seed": 0,
            "run": {"model": "ae", "latent_dim": 8}, "overrides": []}
    for job, text in ((0, json.dumps(good)), (1, '{"state": "runn')):
        (tmp_path / str(job)).mkdir()
        (tmp_path / str(job) / "result.json").write_text(text)
    out = report(tmp_path, ["test/mse"])
    md = out["md"].read_text()
    assert "0.1 ± 0 (n=1)" in md and "damaged" in md and "1/result.json is not a readable record" in md


# ---- a stochastic bottleneck that only this file defines: ELBO, IW likelihood and anomaly score, no edit elsewhere --
import math  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.distributions import Normal  # noqa: E402

from aelab.bottlenecks.base import Bottleneck, BottleneckOutput  # noqa: E402


class FixedSpreadGaussian(Bottleneck):
    """q(z|x) = N(mu(x), 0.5^2 I), prior N(0, I): a posterior whose spread is not learned."""

    terms = ("kl",)
    elbo_terms = ("kl",)
    has_prior = True
    sigma = 0.5

    def __init__(self, in_features: int, latent_dim: int) -> None:
        super().__init__(in_features, latent_dim)
        self.proj = nn.Linear(in_features, latent_dim)

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        mu = self.proj(h)
        kl = 0.5 * (mu.pow(2) + self.sigma**2 - 1.0 - math.log(self.sigma**2)).sum(-1)
        return BottleneckOutput(z=mu + self.sigma * torch.randn_like(mu), terms={"kl": kl})

    def importance_samples(self, h: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        q = Normal(self.proj(h), self.sigma)
        z = q.rsample((k,))  # (k, B, d)
        return z, (Normal(0.0, 1.0).log_prob(z) - q.log_prob(z)).sum(-1)

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        return self.proj(h)

    def sample_prior(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.latent_dim)


def test_a_new_stochastic_bottleneck_gets_elbo_iw_likelihood_and_anomaly_score() -> None:
    from aelab.core.build import build
    from helpers import compose_cfg

    cfg = compose_cfg(["data=digits", "model=vae", "model/arch=mlp", "model.latent_dim=3",
                       f"model.bottleneck._target_={__name__}.FixedSpreadGaussian"])
    model = build(cfg.model).eval()
    x = torch.rand(6, 1, 8, 8)
    with torch.no_grad():
        _, logs = model.compute_loss({"x": x, "target": x}, "val")
        torch.manual_seed(3)
        score = model.anomaly_score(x, x)
        torch.manual_seed(3)  # the same posterior draw, written out: -log p(x|z) + KL
        recon, b = model.reconstruction_nll(x, x)
        torch.manual_seed(3)
        iw1 = model.iw_log_likelihood(x, x, k=1)
        torch.manual_seed(3)
        z = Normal(model.bottleneck.proj(model.encoder(x)), 0.5).rsample((1,))[0]
    assert "elbo" in logs and set(model.anomaly_scores(x, x)) >= {"elbo", "recon"}
    assert torch.allclose(score, recon + b.terms["kl"])
    single = -model.likelihood.nll(model.decoder(z), x) + (Normal(0.0, 1.0).log_prob(z) - Normal(model.bottleneck.proj(
        model.encoder(x)), 0.5).log_prob(z)).sum(-1)
    assert torch.allclose(iw1, single.detach(), atol=1e-4)  # k = 1: the single-sample ELBO


# ---- aelab-check: the contract suite on a user's variant, one line a check ----------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("variant", ["half_kl_vae", "noisy_ae"])
def test_aelab_check_passes_a_users_variants(project: Path, variant: str) -> None:
    result = run_cli("aelab-check", [f"hydra.searchpath=[file://{project}/conf]", f"model={variant}"], cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    verdicts = result.stdout.strip().splitlines()
    assert [v.split(":")[0] for v in verdicts] == ["PASS builds", "PASS shapes", "PASS finite terms and gradients",
                                                   "PASS loss decreases"]


@pytest.mark.slow
def test_aelab_check_fails_a_weight_naming_no_term_in_one_line(project: Path) -> None:
    (project / "conf" / "model" / "broken_vae.yaml").write_text("defaults: [vae, _self_]\nname: broken_vae\n"
                                                                 "loss_weights: {klx: 1.0}\n")
    result = run_cli("aelab-check", [f"hydra.searchpath=[file://{project}/conf]", "model=broken_vae"], cwd=project)
    assert result.returncode == 1
    assert result.stdout.strip().splitlines() == [result.stdout.strip()]  # one line: the build fails, nothing else runs
    assert result.stdout.startswith("FAIL builds:") and "klx" in result.stdout and "kl" in result.stdout


@pytest.mark.slow
def test_corrupting_twice_is_a_config_error(tmp_path: Path) -> None:
    result = run_cli("aelab-train", ["data=digits", "model=dae", "task=denoise", "logger=none", f"hydra.run.dir={tmp_path}"])
    text = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in text
    assert "task=denoise already corrupts the inputs" in text and "model=dae" in text
