"""Priors, flow posteriors and the KL sparsity penalty against exact values: the VampPrior's density against a
torch.distributions mixture, the Monte Carlo KL against the closed form, every flow's log-determinant against
its autograd Jacobian, the Bernoulli KL of the sparsity penalty; and the new variants trained one short epoch
through the CLI, with the importance-weighted NLL of the VampPrior and IAF models."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import pytest
import torch
from torch.autograd.functional import jacobian
from torch.distributions import Bernoulli, Categorical, Independent, MixtureSameFamily, Normal, kl_divergence

from aelab.bottlenecks.base import BottleneckOutput
from aelab.bottlenecks.flows import IAF, FlowGaussian, Planar, Radial
from aelab.bottlenecks.gaussian import DiagonalGaussian
from aelab.bottlenecks.importance import ImportanceWeighted
from aelab.bottlenecks.priors import StandardNormal, VampPrior
from aelab.core.errors import ConfigError
from aelab.losses.penalties import KLSparsity
from helpers import compose_cfg, train_through_cli

F, D, K = 6, 3, 7  # feature size, latent size, VampPrior components


def vamp_bottleneck(seed: int = 0) -> DiagonalGaussian:
    """Pseudo-inputs spread wider than their N(0, 1) start, so that the components lie apart."""
    torch.manual_seed(seed)
    bottleneck = DiagonalGaussian(F, D, prior=partial(VampPrior, components=K)).double()
    with torch.no_grad():
        bottleneck.prior.pseudo_inputs.mul_(4.0)
    return bottleneck


def vamp_mixture(bottleneck: DiagonalGaussian) -> MixtureSameFamily:
    """The prior rebuilt by hand from the pseudo-inputs and the projection's weights (not through the bottleneck)."""
    params = bottleneck.prior.pseudo_inputs @ bottleneck.proj.weight.T + bottleneck.proj.bias  # (K, F) -> (K, 2d)
    mu, logvar = params[:, :D], params[:, D:]
    return MixtureSameFamily(Categorical(torch.ones(K, dtype=torch.float64)),
                             Independent(Normal(mu, (0.5 * logvar).exp()), 1))


def test_vamp_prior_density_is_the_mean_of_its_component_densities() -> None:
    bottleneck = vamp_bottleneck()
    mixture = vamp_mixture(bottleneck)
    z = 2 * torch.randn(5, 11, D, dtype=torch.float64)  # any leading shape, as importance samples (k, B, d)
    expected = torch.logsumexp(mixture.component_distribution.log_prob(z.unsqueeze(-2)), -1) - math.log(K)
    torch.testing.assert_close(bottleneck.prior.log_prob(z), expected)
    torch.testing.assert_close(bottleneck.prior_log_prob(z), mixture.log_prob(z))
    h = torch.randn(11, F, dtype=torch.float64)
    torch.manual_seed(3)
    codes, log_ratio = bottleneck.importance_samples(h, 5)  # (5, 11, d): log p_vamp(z) - log q(z|x)
    mu, logvar = bottleneck.posterior(h)
    torch.testing.assert_close(log_ratio, mixture.log_prob(codes) - Normal(mu, (0.5 * logvar).exp()).log_prob(codes).sum(-1))


def test_vamp_prior_samples_have_the_mixture_mean_and_variance() -> None:
    bottleneck = vamp_bottleneck(1)
    with torch.no_grad():
        mixture = vamp_mixture(bottleneck)
        z = bottleneck.sample_prior(200_000)
    n = len(z)
    assert z.shape == (n, D)
    mean, var = mixture.mean, mixture.variance  # (1/K) sum mu_k; (1/K) sum (s_k^2 + mu_k^2) - mean^2
    assert float((var - mixture.component_distribution.variance.mean(0)).min()) > 0.1  # the components are apart
    assert ((z.mean(0) - mean).abs() < 4 * (var / n).sqrt()).all(), (z.mean(0), mean)
    var_se = (((z - z.mean(0)).pow(4).mean(0) - z.var(0).pow(2)) / n).sqrt()  # the sample variance's standard error
    assert ((z.var(0) - var).abs() < 4 * var_se).all(), (z.var(0), var)


def test_monte_carlo_kl_with_a_standard_normal_prior_is_unbiased() -> None:
    torch.manual_seed(0)
    closed = DiagonalGaussian(F, D).double()
    sampled = DiagonalGaussian(F, D, prior=StandardNormal).double()
    sampled.load_state_dict(closed.state_dict())
    h = torch.randn(4, F, dtype=torch.float64)
    draws = 50_000
    with torch.no_grad():
        kl = sampled(h.repeat(draws, 1)).terms["kl"].view(draws, 4)  # (draws*4,) -> (draws, 4)
    exact = closed(h).terms["kl"]
    mu, logvar = closed.posterior(h)
    torch.testing.assert_close(exact, kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1))
    error = (kl.mean(0) - exact).abs()
    assert (error < 4 * kl.std(0) / math.sqrt(draws)).all(), (kl.mean(0), exact)
    assert float(kl.std(0).min()) > 0.01  # it is a Monte Carlo estimate, not the closed form again


def test_iwae_takes_the_vamp_prior() -> None:
    torch.manual_seed(0)
    iwae = ImportanceWeighted(F, D, samples=4, prior=partial(VampPrior, components=K)).double()
    h = torch.randn(3, F, dtype=torch.float64)
    torch.manual_seed(1)
    out = iwae(h)
    torch.manual_seed(1)
    z, log_ratio = iwae.importance_samples(h, 4)
    torch.testing.assert_close(out.z, z.flatten(0, 1))
    torch.testing.assert_close(out.terms["kl"], -log_ratio.flatten())
    assert not torch.allclose(iwae.prior_log_prob(z), Normal(0.0, 1.0).log_prob(z).sum(-1))


LAYERS = {"planar": Planar, "radial": Radial, "iaf_even": IAF, "iaf_odd": partial(IAF, step=1)}


def layer(name: str, seed: int) -> torch.nn.Module:
    """A layer with parameters scaled up, so planar's u-hat constraint and radial's beta > -alpha are exercised."""
    torch.manual_seed(seed)
    f = LAYERS[name](in_features=F, latent_dim=4).double()
    with torch.no_grad():
        for p in f.parameters():
            p.mul_(3.0)
    return f


def per_example_jacobians(f, z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """(B, d, d): d f(z_i; h_i) / d z_i by autograd, one example at a time."""
    return torch.stack([jacobian(lambda zi, i=i: f(zi[None], h[i:i + 1])[0][0], z[i]) for i in range(len(z))])


@pytest.mark.parametrize("name", LAYERS)
def test_flow_log_determinant_equals_that_of_the_autograd_jacobian(name: str) -> None:
    f = layer(name, seed=0)
    gen = torch.Generator().manual_seed(1)
    h = torch.randn(16, F, generator=gen, dtype=torch.float64)
    z = 1.5 * torch.randn(16, 4, generator=gen, dtype=torch.float64)
    sign, logabsdet = torch.linalg.slogdet(per_example_jacobians(f, z, h))
    _, logdet = f(z, h)
    torch.testing.assert_close(logdet, logabsdet)
    assert (sign > 0).all()  # the invertibility constraints keep every Jacobian orientation-preserving
    assert float(logabsdet.abs().max()) > 0.1  # the maps are not volume-preserving here
    codes, logdets = f(z.expand(3, 16, 4), h)  # importance samples (k, B, d) share the features of their example
    torch.testing.assert_close(logdets, logdet.expand(3, 16))


@pytest.mark.parametrize("step", [0, 1])
def test_iaf_jacobian_is_triangular_in_its_autoregressive_order(step: int) -> None:
    f = layer("iaf_odd" if step else "iaf_even", seed=2)
    gen = torch.Generator().manual_seed(3)
    h = torch.randn(8, F, generator=gen, dtype=torch.float64)
    z = torch.randn(8, 4, generator=gen, dtype=torch.float64)
    order = torch.arange(4) if step == 0 else torch.arange(4).flip(0)  # step 1 reverses the variables
    jac = per_example_jacobians(f, z, h)[:, order][:, :, order]  # rows and columns in the step's order
    assert float(jac.triu(1).abs().max()) == 0.0  # output i depends on no later variable
    lower = torch.ones(4, 4, dtype=torch.bool).tril(-1)
    assert (jac.abs().amax(0)[lower] > 0).all()  # ...and on every earlier one
    hid = torch.nn.functional.elu(f.inp(z) + f.context(h))
    sigma = torch.sigmoid(f.out(hid)[:, 4:])
    torch.testing.assert_close(torch.diagonal(jac, dim1=1, dim2=2), sigma[:, order])  # dz'_i/dz_i = sigma_i


@pytest.mark.parametrize("name", ["planar", "radial", "iaf_even"])
def test_flow_posterior_log_ratio_is_the_change_of_variables(name: str) -> None:
    """importance_samples' log p(z_K) - log q_K(z_K|x), with q_K from q_0 and the autograd Jacobian of the whole flow."""
    torch.manual_seed(0)
    bottleneck = FlowGaussian(F, 4, layer=LAYERS[name], length=3).double()
    h = torch.randn(5, F, dtype=torch.float64)
    torch.manual_seed(1)
    z, log_ratio = bottleneck.importance_samples(h, 2)  # (2, 5, d), (2, 5)
    mu, logvar = bottleneck.posterior(h)
    q0 = Normal(mu, (0.5 * logvar).exp())
    torch.manual_seed(1)
    z0 = q0.rsample((2,))
    for s in range(2):
        jac = per_example_jacobians(lambda zi, hi: (bottleneck.flow(zi, hi)[0], None), z0[s], h)
        log_qk = q0.log_prob(z0[s]).sum(-1) - torch.linalg.slogdet(jac)[1]
        torch.testing.assert_close(log_ratio[s], Normal(0.0, 1.0).log_prob(z[s]).sum(-1) - log_qk)
    torch.manual_seed(1)
    out = bottleneck(h)  # the training path: the same draw as one importance sample, kl = -log ratio
    torch.manual_seed(1)
    z1, log_ratio1 = bottleneck.importance_samples(h, 1)
    torch.testing.assert_close(out.z, z1[0])
    torch.testing.assert_close(out.terms["kl"], -log_ratio1[0])
    torch.testing.assert_close(bottleneck.embed(h), bottleneck.flow(mu, h)[0])


def codes_with_rates(counts: list[int], batch: int) -> torch.Tensor:
    """0/1 codes (batch, len(counts)) whose unit j fires for counts[j] examples: rho_hat_j = counts[j] / batch."""
    z = torch.zeros(batch, len(counts), dtype=torch.float64)
    for j, c in enumerate(counts):
        z[torch.randperm(batch)[:c], j] = 1.0
    return z


def test_kl_sparsity_is_the_bernoulli_kl_of_the_batch_rates_and_zero_at_the_target() -> None:
    torch.manual_seed(0)
    counts, batch, rho = [1, 4, 10, 17], 20, 0.05
    z = codes_with_rates(counts, batch)
    term = KLSparsity(rho=rho)(None, z, BottleneckOutput(z=z))
    rates = torch.tensor(counts, dtype=torch.float64) / batch
    exact = kl_divergence(Bernoulli(probs=torch.full_like(rates, rho)), Bernoulli(probs=rates)).sum()
    assert term.shape == (batch,)
    torch.testing.assert_close(term.mean(), exact)  # the batch mean of the per-example term is the penalty
    assert float(exact) > 1.0
    at_target = codes_with_rates([1, 1, 1], batch)  # 1 / 20 = rho for every unit
    assert float(KLSparsity(rho=rho)(None, at_target, BottleneckOutput(z=at_target)).abs().max()) < 1e-12
    with pytest.raises(ConfigError, match="Sigmoid"):
        KLSparsity(rho=rho)(None, z, BottleneckOutput(z=z - 0.5))


def test_dvae_trains_a_vae_on_salt_and_pepper_inputs(tmp_path: Path) -> None:
    from aelab.core.build import build

    model = build(compose_cfg(["data=digits", "model=dvae", "model/arch=mlp"], tmp_path).model)
    x = torch.rand(512, 1, 8, 8) * 0.8 + 0.1  # no value at 0 or 1 before corruption
    changed = float((model.corruption(x) != x).double().mean())
    assert type(model.bottleneck) is DiagonalGaussian and changed == pytest.approx(0.1, abs=0.01)


@pytest.mark.parametrize("overrides", [["model=vamp_vae"], ["model=iwae", "+model/prior=vamp"], ["model=planar_vae"],
                                       ["model=radial_vae"], ["model=iaf_vae"]], ids=" ".join)
def test_the_likelihood_evaluator_and_the_training_bound_agree(overrides: list[str], tmp_path: Path) -> None:
    """With the same draws, iw_log_likelihood with the bottleneck's own number of samples is minus its training
    bound (the ELBO; iwae's k-sample bound): importance_samples returns the codes and log p(z) - log q(z|x) the
    training objective uses (the flowed z_K and log q_K; the VampPrior's log p)."""
    from aelab.core.build import build

    model = build(compose_cfg(["data=digits", *overrides, "model/arch=mlp", "model.latent_dim=8"], tmp_path).model)
    x = torch.rand(16, 1, 8, 8)
    k = getattr(model.bottleneck, "samples", 1)
    torch.manual_seed(0)
    bound = model.anomaly_score(x, x)  # -ELBO (iwae: minus its k-sample bound)
    torch.manual_seed(0)
    log_px = model.iw_log_likelihood(x, x, k)
    torch.testing.assert_close(log_px, -bound)
    assert model.bottleneck.prior is not None or "vamp" not in " ".join(overrides)


RUNS = ("vamp_vae", "planar_vae", "radial_vae", "iaf_vae", "dvae", "kl_sparse_ae")
LIKELIHOOD = ["eval=[likelihood]", "eval.likelihood.k=10", "eval.likelihood.max_examples=100"]
IW_RUNS = ("vamp_vae", "iaf_vae")


@pytest.mark.slow
def test_each_variant_trains_an_epoch_through_the_cli(tmp_path: Path) -> None:
    """One short epoch of each (processes in parallel): completed, finite terms and ELBO, a finite IW NLL."""
    runs = {name: [*(LIKELIHOOD if name in IW_RUNS else ["eval=none"]), "model/arch=mlp", "callbacks.embeddings=null"]
            for name in RUNS}
    for name, result in train_through_cli(runs, tmp_path).items():
        terms = ("kl_sparsity",) if name == "kl_sparse_ae" else ("kl", "elbo")
        for key in [f"{stage}/{term}" for stage in ("train", "test") for term in terms]:
            assert math.isfinite(result["metrics"][key]), (name, key)
        if name in IW_RUNS:  # nats per digits image under the Bernoulli likelihood: positive, finite
            assert 0 < result["metrics"]["test/iw_nll"] < 1e4, (name, result["metrics"]["test/iw_nll"])
