"""Adversaries: a second network, its own optimizer, trained against the autoencoder by the same module.

A discriminator is a `net` (any aelab encoder: features (B, F) with `out_dim`) and a linear head giving one logit
per example. Each step the module first updates the autoencoder on its loss, which includes the adversary's
`generator_terms` (weighted by name in `model.loss_weights` like every other term), then makes `steps` updates of
the discriminator on `discriminator_loss`, with the autoencoder's outputs detached. Logits l give D = sigmoid(l);
-log D = softplus(-l) and -log (1 - D) = softplus(l).

- CodesVsPrior: adversarial autoencoder (Makhzani et al. 2016, "Adversarial Autoencoders"): codes against draws
  of the bottleneck's prior; the term `adversarial` is the non-saturating -log D(z).
- CodesVsPermuted: FactorVAE (Kim & Mnih 2018, "Disentangling by Factorising"): codes against codes with every
  dimension permuted independently across the batch (draws of the product of the marginals); at the optimum
  l(z) = log q(z) - log prod_j q(z_j), so the term `tc` = l(z) is the density-ratio estimate of the total
  correlation. The paper permutes a second batch; here the batch's own detached codes are permuted.
- ImagesVsDecoded: VAE-GAN (Larsen et al. 2016, "Autoencoding beyond pixels using a learned similarity metric"):
  images against reconstructions and decoded prior samples; `feature_recon` = 0.5 ||f(x) - f(x_rec)||^2 in the
  discriminator's features f (their Dis_l reconstruction), `gan` the non-saturating GAN term of both fakes.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from aelab.bottlenecks.base import BottleneckOutput
from aelab.core.errors import positive_int


class Adversary(nn.Module):
    """Discriminator `net` + linear head; `optimizer` and `steps` (discriminator updates per autoencoder update)."""

    terms: tuple[str, ...] = ()

    def __init__(self, net: nn.Module, optimizer: Callable[..., torch.optim.Optimizer], steps: int = 1) -> None:
        super().__init__()
        self.net, self.head = net, nn.Linear(net.out_dim, 1)
        self.optimizer_factory, self.steps = optimizer, positive_int("model.adversary.steps", steps)

    def logits(self, v: torch.Tensor) -> torch.Tensor:
        """One logit per example (B,): positive says 'real'."""
        return self.head(self.net(v)).squeeze(-1)

    def generator_terms(self, module: nn.Module, target: torch.Tensor, out: torch.Tensor,
                        b: BottleneckOutput) -> dict[str, torch.Tensor]:
        """The autoencoder's per-example terms (B,) from the target, the decoder output and the bottleneck output."""
        raise NotImplementedError

    def discriminator_loss(self, module: nn.Module, target: torch.Tensor, out: torch.Tensor,
                           b: BottleneckOutput) -> torch.Tensor:
        """The discriminator's scalar loss; the caller passes detached autoencoder outputs."""
        raise NotImplementedError

    def real_fake_loss(self, real: torch.Tensor, *fakes: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy of real examples against each batch of fakes (fakes averaged)."""
        fake = sum(F.softplus(self.logits(f)).mean() for f in fakes) / len(fakes)
        return F.softplus(-self.logits(real)).mean() + fake


class CodesVsPrior(Adversary):
    terms = ("adversarial",)

    def generator_terms(self, module, target, out, b):
        return {"adversarial": F.softplus(-self.logits(b.z))}

    def discriminator_loss(self, module, target, out, b):
        return self.real_fake_loss(module.bottleneck.sample_prior(len(b.z)), b.z)


def permute_dims(z: torch.Tensor) -> torch.Tensor:
    """Each column of (B, d) shuffled independently: a sample of the product of the batch's marginals."""
    order = torch.argsort(torch.rand(z.shape, device=z.device), dim=0)
    return torch.gather(z, 0, order)


class CodesVsPermuted(Adversary):
    terms = ("tc",)

    def generator_terms(self, module, target, out, b):
        return {"tc": self.logits(b.z)}

    def discriminator_loss(self, module, target, out, b):
        return self.real_fake_loss(b.z, permute_dims(b.z))


class ImagesVsDecoded(Adversary):
    terms = ("feature_recon", "gan")

    def fakes(self, module, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstructions (the likelihood's mean) and as many decoded prior samples."""
        return module.likelihood.mean(out), module.likelihood.mean(module.decoder(module.bottleneck.sample_prior(len(out))))

    def generator_terms(self, module, target, out, b):
        recon, sampled = self.fakes(module, out)
        features = self.net(torch.cat([target, recon]))  # (2B, F)
        real_f, recon_f = features.chunk(2)
        logits = self.head(torch.cat([recon_f, self.net(sampled)])).squeeze(-1).chunk(2)
        return {"feature_recon": 0.5 * (real_f.detach() - recon_f).pow(2).sum(-1),
                "gan": sum(F.softplus(-logit) for logit in logits)}

    def discriminator_loss(self, module, target, out, b):
        with torch.no_grad():
            recon, sampled = self.fakes(module, out)
        return self.real_fake_loss(target, recon, sampled)
