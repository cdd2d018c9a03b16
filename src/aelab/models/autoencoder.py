"""AutoencoderModule: the only LightningModule. Encoder + bottleneck + decoder + weighted loss terms."""

from __future__ import annotations

import math
from typing import Callable

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch import nn

from aelab.bottlenecks.base import Bottleneck, BottleneckOutput
from aelab.core.errors import ConfigError, DivergenceError, positive_int
from aelab.data.colorspace import check_space, to_rgb, to_space
from aelab.losses.adversary import Adversary
from aelab.losses.likelihood import Likelihood
from aelab.losses.penalties import Penalty
from aelab.metrics.reconstruction import COSTLY, data_kind, reconstruction_metrics
from aelab.models.density import CodeDensity

EVAL_STAGES = ("val", "test")


class AutoencoderModule(pl.LightningModule):
    """Loss = mean over the batch of [ -log p(target|z) + sum_k weights[k] * terms[k] ].

    The terms come from the bottleneck (e.g. `kl`, `commit`) and from `penalties` (e.g. `contractive`); a
    multi-sample bottleneck (IWAE) combines its samples in `Bottleneck.objective`. An `adversary` (a discriminator
    with its own optimizer, aelab.losses.adversary) adds its named terms the same way and is trained in turn with
    the autoencoder each step (manual optimisation).

    `color_space` (ycbcr, lab; set by `task.space` for colorization): the networks work in that space (the input is
    converted to it, the likelihood is taken against the target converted to it) and `reconstruct` keeps the input's
    luminance channel, so the network predicts chroma from luminance; `decode(z)` alone uses the decoder's luminance.
    """

    def __init__(
        self,
        name: str,
        arch: str,
        latent_dim: int,
        in_shape: list[int],
        encoder: nn.Module,
        decoder: nn.Module,
        bottleneck: Callable[..., Bottleneck],
        likelihood: Likelihood,
        optimizer: Callable[..., torch.optim.Optimizer],
        loss_weights: dict[str, float] | None = None,
        penalties: dict[str, Penalty] | None = None,
        corruption: nn.Module | None = None,
        density: CodeDensity | None = None,
        sample_from: str = "auto",
        schedules: list[pl.Callback] | None = None,
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        channels_last: bool = False,
        compile: bool = False,
        color_space: str = "rgb",
        val_metrics: str = "last",
        steps_per_call: int = 1,
        adversary: Adversary | None = None,
    ) -> None:
        super().__init__()
        positive_int("model.latent_dim", latent_dim)
        self.save_hyperparameters(ignore=["encoder", "decoder", "bottleneck", "likelihood", "optimizer", "scheduler",
                                          "penalties", "corruption", "density", "schedules", "adversary"], logger=False)
        self.encoder, self.decoder, self.likelihood = encoder, decoder, likelihood
        self.bottleneck = bottleneck(in_features=encoder.out_dim, latent_dim=latent_dim)
        self.penalties, self.corruption, self.density = dict(penalties or {}), corruption, density
        self.adversary = adversary
        if sample_from not in ("auto", "density") or (sample_from == "density" and density is None):
            raise ConfigError(f"model.sample_from must be 'auto' or 'density' (with a model.density), got {sample_from!r}")
        self.sample_from = sample_from
        self.density_codes: torch.Tensor | None = None  # the codes of the density's last fit
        self.color_space = check_space(color_space)
        if color_space != "rgb" and (len(in_shape) != 3 or in_shape[0] != 3):
            raise ConfigError(f"color space {color_space} needs colour images (3, H, W), got data.shape={list(in_shape)}")
        self.schedules = list(schedules or [])  # weight schedules, handed to the Trainer by configure_callbacks
        self.loss_weights = dict(loss_weights or {})  # mutable: weight schedules (callbacks) update it
        emitted = [*self.bottleneck.terms, *self.penalties, *self.adversary_terms]
        unknown = sorted(set(self.loss_weights) - set(emitted))
        if unknown:
            raise ConfigError(f"model.loss_weights names {unknown}, which neither {type(self.bottleneck).__name__}, "
                              f"model.penalties nor model.adversary emit; the terms are {emitted or 'none'}")
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.steps_per_call = positive_int("model.steps_per_call", steps_per_call)
        if (steps_per_call > 1 or self.adversary is not None) and scheduler is not None:
            raise ConfigError("model.steps_per_call > 1 and model.adversary train with manual optimisation, which "
                              "does not step a model.scheduler: set model.scheduler=null")
        # several optimizer steps per training_step, or a discriminator's: manual
        self.automatic_optimization = steps_per_call == 1 and self.adversary is None
        if self.adversary is not None:  # DDP leaves the discriminator alone: its gradients are averaged by hand
            self._ddp_params_and_buffers_to_ignore = [f"adversary.{name}" for name, _ in self.adversary.named_parameters()]
        self.channels_last = channels_last and len(in_shape) == 3  # NHWC convolutions (tensor cores on GPUs)
        self.compile = compile  # torch.compile the encoder and decoder when the trainer sets the model up
        kind = data_kind(in_shape)  # images get SSIM, signals SNR and SI-SDR
        self.metrics = nn.ModuleDict({s: reconstruction_metrics(f"{s}/", kind) for s in EVAL_STAGES})
        if val_metrics not in ("every", "last"):
            raise ConfigError(f"model.val_metrics must be 'every' or 'last', got {val_metrics!r}")
        self.val_metrics = val_metrics  # last: the costly val metrics (SSIM) in the last epoch only, the rest every epoch

    # ---- the API that callbacks, metrics and evaluation use -------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic code (B, d) of inputs (B, *shape)."""
        return self.bottleneck.embed(self.features(x)[0])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruction (the likelihood's mean) of codes (B, d) alone (a skip-connected decoder gets no skips)."""
        return to_rgb(self.likelihood.mean(self.decoder(z)), self.color_space)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The likelihood's mean at the deterministic code of x, with x's skip maps for skip-connected nets."""
        h, skips = self.features(x)
        mean = self.likelihood.mean(self.decode_with(self.bottleneck.embed(h), skips))
        if self.color_space != "rgb":  # (B, 3, H, W): the input's luminance, the predicted chroma
            mean = torch.cat([to_space(x, self.color_space)[:, :1], mean[:, 1:]], dim=1)
        return to_rgb(mean, self.color_space)

    def nll(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """-log p(target|decoder output) per example (B,), the target taken into the model's colour space."""
        return self.likelihood.nll(out, to_space(target, self.color_space))

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """Encoder features (B, F) and, for skip-connected encoders (aelab.nets.unet), their skip maps (else None)."""
        x = to_space(x, self.color_space)
        with_skips = getattr(self.encoder, "with_skips", None)
        return with_skips(x) if with_skips is not None else (self.encoder(x), None)

    def decode_with(self, z: torch.Tensor, skips: list[torch.Tensor] | None, samples: int = 1) -> torch.Tensor:
        """Decoder output for codes (S*B, d) and the skip maps of their B inputs, repeated for S = `samples` codes
        per input (sample-major, as the repeated targets of multi-sample bottlenecks)."""
        if skips is None:
            return self.decoder(z)
        if samples > 1:
            skips = [s.repeat(samples, *[1] * (s.ndim - 1)) for s in skips]
        return self.decoder(z, skips)

    @property
    def has_elbo(self) -> bool:
        """Whether recon + the bottleneck's `elbo_terms` is -ELBO: it declares them and the likelihood is a density."""
        return bool(self.bottleneck.elbo_terms) and self.likelihood.normalised

    @property
    def samples_from_density(self) -> bool:
        """True when `sample` draws codes from the ex-post density (fitted first): no prior, or sample_from=density."""
        return not self.bottleneck.has_prior or self.sample_from == "density"

    def sample(self, n: int) -> torch.Tensor:
        """`n` new examples decoded from the bottleneck's prior, or from the ex-post density of the codes."""
        if not self.samples_from_density:
            return self.decode(self.bottleneck.sample_prior(n))
        if self.density is None:
            raise ConfigError(f"{self.hparams.name} has no prior and model.density is null: nothing to sample from")
        return self.decode(self.density.sample(n).to(self.device))

    def fit_density(self, z: torch.Tensor) -> None:
        """Fit the ex-post latent density on training codes (B, d); needed by `sample` without a prior. Codes equal
        to those of the last fit are not fitted again (the sample grid at the end of fitting and best.ckpt's apply
        state encode the same examples, with the same weights whenever the last epoch was the best)."""
        if self.density is None or (self.density_codes is not None and self.density_codes.shape == z.shape
                                    and torch.equal(self.density_codes, z)):
            return
        self.density.fit(z)
        self.density_codes = z.detach()

    def density_state(self) -> dict | None:
        """The fitted code density's state, for a checkpoint; None when there is none or it is not fitted."""
        return self.density.state() if self.density is not None and self.density.fitted else None

    def load_density(self, state: dict | None) -> None:
        """Load a stored code density into the configured one (nothing to do when either is missing)."""
        if self.density is not None and state is not None:
            self.density.load_state(state)

    def anomaly_score(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-example score (B,): -log p(target|z), plus the bottleneck's `elbo_terms` (i.e. -ELBO) when it declares them."""
        recon, b = self.reconstruction_nll(x, target)
        return self.bottleneck.objective(recon, b.terms, {name: 1.0 for name in self.bottleneck.elbo_terms})

    def anomaly_scores(self, x: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-example scores (B,), higher = more anomalous: `elbo` (-ELBO, when the bottleneck declares one), `recon`
        (-log p(target|z) at the deterministic code) and `latent` (-log density of that code, once fitted)."""
        h, skips = self.features(x)
        z = self.bottleneck.embed(h)
        scores = {"elbo": self.anomaly_score(x, target)} if self.has_elbo else {}
        scores["recon"] = self.nll(self.decode_with(z, skips), target)
        if self.density is not None and self.density.fitted:
            scores["latent"] = -self.density.log_prob(z).to(z.device)
        return scores

    def metric_directions(self) -> dict[str, bool]:
        """Whether higher is better, for every scalar this module logs: the torchmetrics metrics declare it
        themselves; the loss and its terms are minimised, the ELBO is maximised. Other stats are not ranked."""
        minimised = ("loss", "recon", *self.bottleneck.terms, *self.penalties, *self.adversary_terms)
        directions = {f"{stage}/{name}": False for stage in ("train", *EVAL_STAGES) for name in minimised}
        if self.has_elbo:
            directions |= {f"{stage}/elbo": True for stage in ("train", *EVAL_STAGES)}
        for collection in self.metrics.values():
            directions |= {key: bool(metric.higher_is_better) for key, metric in collection.items(keep_base=False)}
        return directions

    def log_joint(self, z: torch.Tensor, target: torch.Tensor, skips: list[torch.Tensor] | None = None) -> torch.Tensor:
        """log p(target, z) = log p(target|z) + log p(z) (S*B,) of codes (S*B, d), S codes per target (sample-major);
        the hook of posteriors that move their codes along its gradient (`Bottleneck.refine`)."""
        samples = len(z) // len(target)
        repeated = target.repeat(samples, *[1] * (target.ndim - 1))  # (B, ...) -> (S*B, ...)
        return -self.nll(self.decode_with(z, skips, samples=samples), repeated) + self.bottleneck.prior_log_prob(z)

    def iw_log_likelihood(self, x: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
        """Importance-weighted estimate (B,) of log p(target) with k posterior samples (Burda et al. 2016)."""
        h, skips = self.features(x)
        z, log_ratio = self.bottleneck.importance_samples(h, k)  # (k, B, d), (k, B)
        z, log_ratio = self.bottleneck.refine_samples(z, log_ratio, lambda c: self.log_joint(c, target, skips))
        repeated = target.repeat(k, *[1] * (target.ndim - 1))  # (B, ...) -> (k*B, ...)
        log_px_z = -self.nll(self.decode_with(z.flatten(0, 1), skips, samples=k), repeated).view(k, -1)  # (k, B)
        return torch.logsumexp(log_px_z + log_ratio, dim=0) - math.log(k)

    def interpolate(self, x0: torch.Tensor, x1: torch.Tensor, steps: int = 8) -> torch.Tensor:
        """Decode straight lines between the codes of x0 and x1 (codes alone, no skips): (B, *shape) x 2 -> (B, steps, *shape)."""
        z0, z1 = self.encode(x0), self.encode(x1)
        t = torch.linspace(0, 1, steps, device=z0.device).view(1, steps, 1)
        z = (1 - t) * z0.unsqueeze(1) + t * z1.unsqueeze(1)  # (B, steps, d)
        return self.decode(z.flatten(0, 1)).unflatten(0, (len(x0), steps))

    # ---- training -------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, BottleneckOutput]:
        """Decoder output (likelihood parameters) and the bottleneck's output for inputs x."""
        h, skips = self.features(x)
        b = self.bottleneck(h)
        return self.decode_with(b.z, skips, samples=len(b.z) // len(x)), b

    def reconstruction_nll(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, BottleneckOutput]:
        """-log p(target|z) per code (S*B,) for codes z of x (S > 1 for multi-sample bottlenecks), and the bottleneck output."""
        recon, _, _, b = self.reconstruction(x, target)
        return recon, b

    def reconstruction(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                            BottleneckOutput]:
        """`reconstruction_nll` with the decoder output and the target it was scored against (repeated S times); the
        bottleneck may `refine` its codes with log p(target, z) first (forward, which has no target, does not)."""
        h, skips = self.features(x)
        b = self.bottleneck.refine(h, self.bottleneck(h), lambda z: self.log_joint(z, target, skips))
        out = self.decode_with(b.z, skips, samples=len(b.z) // len(x))
        if len(out) != len(target):  # multi-sample bottleneck: (B, ...) -> (S*B, ...)
            target = target.repeat(len(out) // len(target), *[1] * (target.ndim - 1))
        return self.nll(out, target), out, target, b

    @property
    def adversary_terms(self) -> tuple[str, ...]:
        return self.adversary.terms if self.adversary is not None else ()

    def compute_loss(self, batch: dict[str, torch.Tensor], stage: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The scalar loss and every scalar to log for one batch (no logging: tests call it directly)."""
        loss, logs, _ = self.forward_loss(batch, stage)
        return loss, logs

    def forward_loss(self, batch: dict[str, torch.Tensor], stage: str) -> tuple[torch.Tensor, dict[str, torch.Tensor], tuple]:
        """`compute_loss`, and what the adversary's update needs: (target, decoder output, bottleneck output)."""
        x = self.corruption(batch["x"]) if self.corruption is not None and stage == "train" else batch["x"]
        recon, out, target, b = self.reconstruction(x, batch["target"])
        weights = {k: w for k, w in self.loss_weights.items() if k in b.terms}
        per_example = self.bottleneck.objective(recon, b.terms, weights)  # (B,)
        terms = dict(b.terms)
        extra = {name: penalty(self, x, b) for name, penalty in self.penalties.items()}
        if self.adversary is not None:
            extra |= self.adversary.generator_terms(self, target, out, b)
        for name, term in extra.items():  # (S*B,) terms of a multi-sample bottleneck: averaged over the samples
            terms[name] = term.view(-1, len(per_example)).mean(0)
            per_example = per_example + self.loss_weights.get(name, 0.0) * terms[name]
        loss = per_example.mean()
        logs = {"loss": loss, "recon": recon.mean(), **{k: v.mean() for k, v in terms.items()}, **b.stats}
        if self.has_elbo:  # the ELBO always uses weight 1 on its terms, whatever beta the loss uses
            logs["elbo"] = -(recon + sum(b.terms[name] for name in self.bottleneck.elbo_terms)).mean()
        return loss, logs, (target, out, b)

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        loss, logs, seen = self.forward_loss(batch, stage)
        if stage == "train" and self.adversary is not None:
            self._seen = seen  # for the adversary's update, which follows the autoencoder's
        if stage == "train" and not torch.isfinite(loss):
            bad = [k for k, v in logs.items() if not torch.isfinite(v).all()]
            raise DivergenceError(f"non-finite training loss at step {self.global_step} (epoch {self.current_epoch}); "
                                  f"non-finite terms: {', '.join(bad)}; the last good checkpoint is kept")
        if stage == "train":
            self._accumulate(logs, len(batch["x"]))
        else:  # DDP: batch sizes x world size give the same means, with a total that Lightning's mean-sync of its
            # integer counter cannot floor (Lightning #21859: uneven val/test shards inflated every epoch mean)
            self.log_dict({f"{stage}/{k}": v for k, v in logs.items()}, on_epoch=True,
                          batch_size=len(batch["x"]) * self.trainer.world_size, sync_dist=True)
        if stage in EVAL_STAGES:
            costly = stage == "test" or self.costly_val_epoch()
            metrics = {k: m for k, m in self.metrics[stage].items(keep_base=False)
                       if costly or k.rsplit("/", 1)[-1] not in COSTLY}
            recon = self.reconstruct(batch["x"])
            for metric in metrics.values():
                metric.update(recon, batch["target"])
            self.log_dict(metrics, on_epoch=True)
        return loss

    def costly_val_epoch(self) -> bool:
        """Whether this validation computes the costly metrics too: every epoch with `val_metrics=every` or when the
        fit may end before max_epochs (max_steps, early stopping), else in the last epoch (every epoch when the
        trainer has no epoch limit), never in the sanity check."""
        trainer = self.trainer
        if self.val_metrics == "every" or trainer.max_steps > 0 or trainer.early_stopping_callback is not None:
            return True
        return not trainer.sanity_checking and trainer.current_epoch >= trainer.max_epochs - 1

    def _accumulate(self, logs: dict[str, torch.Tensor], n: int) -> None:
        """Sum the batch's train scalars for the epoch means; log them as `train/<name>_step` every log interval.

        Cheaper than self.log on every step, which costs a few percent of a small model's step time on CPU.
        """
        for k, v in logs.items():
            self._train_sums[k] = self._train_sums.get(k, 0.0) + v.detach() * n
        self._train_count += n
        if self.global_step % self.trainer.log_every_n_steps == 0:
            self.log_dict({f"train/{k}_step": v for k, v in logs.items()}, on_step=True, on_epoch=False)

    def on_train_epoch_start(self) -> None:
        self._train_sums: dict[str, torch.Tensor] = {}
        self._train_count = 0

    def on_train_epoch_end(self) -> None:
        if self._train_count:
            means = {f"train/{k}": v / self._train_count for k, v in self._train_sums.items()}
            self.log_dict(means, on_epoch=True, sync_dist=True)

    def setup(self, stage: str) -> None:
        """Have the datamodule hand `steps_per_call` of its train batches to each training_step, and tell the
        bottleneck the number of training examples."""
        data = self.trainer.datamodule
        if data is not None:
            data.batches_per_call = self.steps_per_call
            if getattr(data, "train_set", None) is not None:
                self.bottleneck.set_dataset_size(len(data.train_set))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        """One optimizer step (Lightning's automatic optimisation), or with `steps_per_call` > 1 one step per
        batch of the datamodule in this call: the same batches, order, weight schedules and global step, with
        Lightning's per-call cost (~1 ms on a CPU) paid once for all of them."""
        if self.automatic_optimization:
            return self._step(batch, "train")
        optimizers = self.optimizers()
        optimizer = optimizers[0] if isinstance(optimizers, list) else optimizers
        size = self.trainer.datamodule.batch_size if self.steps_per_call > 1 else len(batch["x"])
        for start in range(0, len(batch["x"]), size):  # (K*B, ...) -> K batches (B, ...)
            for schedule in self.schedules:
                schedule.apply(self, self.global_step)
            loss = self._step({k: v[start:start + size] for k, v in batch.items()}, "train")
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()  # advances self.global_step
            if self.adversary is not None:
                self.adversary_step(optimizers[1], min(size, len(batch["x"]) - start))
        return None

    def adversary_step(self, optimizer: pl.core.optimizer.LightningOptimizer, n: int) -> None:
        """`adversary.steps` updates of the discriminator on this batch's detached outputs. Its plain torch
        optimizer steps, so `global_step` keeps counting autoencoder updates (schedules, max_steps); under DDP the
        discriminator's gradients are averaged over the ranks here."""
        target, out, b = self._seen
        self._seen = None
        b = type(b)(z=b.z.detach(), terms={}, stats={})
        for _ in range(self.adversary.steps):
            loss = self.adversary.discriminator_loss(self, target, out.detach(), b)
            optimizer.optimizer.zero_grad()
            loss.backward()
            if dist.is_available() and dist.is_initialized():
                for p in self.adversary.parameters():
                    if p.grad is not None:
                        dist.all_reduce(p.grad)
                        p.grad /= dist.get_world_size()
            optimizer.optimizer.step()
        self._accumulate({"adversary": loss.detach()}, n)

    def on_fit_start(self) -> None:
        """Under DDP every rank starts from rank 0's discriminator (DDP ignores it, so does not broadcast it)."""
        if self.adversary is not None and dist.is_available() and dist.is_initialized():
            for tensor in [*self.adversary.parameters(), *self.adversary.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    # ---- performance options (trainer=gpu turns them on) -------------------------------------------------------
    def configure_model(self) -> None:
        if self.channels_last:
            self.to(memory_format=torch.channels_last)
        if self.compile:  # in place: the state_dict keys stay those of the plain modules
            self.encoder.compile()
            self.decoder.compile()

    def on_after_batch_transfer(self, batch: dict[str, torch.Tensor], dataloader_idx: int) -> dict[str, torch.Tensor]:
        if self.channels_last:
            return {k: v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 else v for k, v in batch.items()}
        return batch

    def configure_callbacks(self) -> list[pl.Callback]:
        return self.schedules

    def configure_optimizers(self):
        adversary = set(self.adversary.parameters()) if self.adversary is not None else set()
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p not in adversary])
        if self.adversary is not None:
            return [optimizer, self.adversary.optimizer_factory(params=self.adversary.parameters())]
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer),
                                                         "monitor": "val/loss"}}
