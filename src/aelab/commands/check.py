"""`aelab-check model=<variant> [overrides]`: the contract every variant must meet, on any variant, one line a check.

The same checks run over every conf/model/*.yaml in tests/test_contract.py, and on a researcher's own variant from
their project (`hydra.searchpath=[file://<project>/conf]`, their Python parts importable): the variant builds (every
loss weight names a term the bottleneck or a penalty emits), encode/decode/reconstruct/interpolate/sample have the
right shapes, the loss terms are finite scalars with finite gradients, and 30 Adam steps lower the loss on a
fixed batch. Data defaults to scikit-learn's digits (seconds, offline); `data=...` checks on other data.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import torch
from omegaconf import DictConfig

STEPS = 30  # optimizer steps that must lower the loss
BATCH = 128


def encode_shapes(model: Any, batch: dict[str, torch.Tensor]) -> str:
    """encode -> (B, d); decode, reconstruct -> the input's shape; interpolate -> (B, steps, ...); sample -> finite."""
    x = batch["x"][:10]
    model.eval()
    with torch.no_grad():
        z = model.encode(x)
        assert z.ndim == 2 and len(z) == len(x), f"encode gave {tuple(z.shape)}, expected ({len(x)}, d)"
        assert model.decode(z).shape == x.shape, f"decode gave {tuple(model.decode(z).shape)}, expected {tuple(x.shape)}"
        assert model.reconstruct(x).shape == x.shape, "reconstruct does not give the input's shape"
        lines = model.interpolate(x[:2], x[2:4], steps=5)
        assert lines.shape == (2, 5, *x.shape[1:]), f"interpolate gave {tuple(lines.shape)}"
        if model.samples_from_density:
            model.fit_density(model.encode(batch["x"]))
        samples = model.sample(7)
    assert samples.shape == (7, *x.shape[1:]) and torch.isfinite(samples).all(), "sample gave wrong shapes or non-finite values"
    return f"code size {z.shape[1]}, samples {tuple(samples.shape)}"


def finite_terms(model: Any, batch: dict[str, torch.Tensor]) -> str:
    """Every emitted term a finite scalar; the loss backpropagates finite, non-zero gradients."""
    model.train()
    model.zero_grad()
    loss, logs = model.compute_loss(batch, "train")
    emitted = [*model.bottleneck.terms, *model.penalties, *model.adversary_terms]
    bad = [n for n in emitted if n in logs and not (logs[n].ndim == 0 and math.isfinite(float(logs[n].detach())))]
    assert not bad and loss.ndim == 0 and math.isfinite(float(loss.detach())), f"non-finite or non-scalar terms: {bad or ['loss']}"
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads), "a parameter has no gradient or a non-finite one"
    assert sum(float(g.abs().sum()) for g in grads) > 0, "all gradients are zero"
    return f"terms {', '.join(emitted) or 'none'}; loss {float(loss.detach()):.4g}"


def loss_decreases(model: Any, batch: dict[str, torch.Tensor], steps: int = STEPS) -> str:
    """`steps` optimizer steps on the batch lower the loss (the same noise draws before and after)."""
    optimizer = model.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    optimizer = optimizer[0] if isinstance(optimizer, list) else optimizer  # the autoencoder's; a discriminator stays fixed

    def eval_loss() -> float:
        torch.manual_seed(1)
        model.eval()
        with torch.no_grad():
            return float(model.compute_loss(batch, "val")[0])

    before = eval_loss()
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model.compute_loss(batch, "train")[0].backward()
        optimizer.step()
    after = eval_loss()
    assert after < before, f"the loss did not fall in {steps} steps ({before:.4g} -> {after:.4g})"
    return f"{before:.4g} -> {after:.4g} in {steps} steps"


CHECKS: dict[str, Callable[[Any, dict[str, torch.Tensor]], str]] = {
    "shapes": encode_shapes, "finite terms and gradients": finite_terms, "loss decreases": loss_decreases}


def build_model(cfg: DictConfig) -> tuple[Any, dict[str, torch.Tensor]]:
    """The variant's module (seeded) and a fixed training batch of the configured data."""
    from aelab.core.build import build

    data = build(cfg.data, task=build(cfg.task), seed=cfg.seed)
    data.setup()
    torch.manual_seed(cfg.seed)
    return build(cfg.model), data.fixed_batch("train", BATCH)


def run_checks(cfg: DictConfig) -> list[tuple[str, bool, str]]:
    """(check, passed, one-line detail) for `builds` and every check in CHECKS; later checks need the build."""
    try:
        model, batch = build_model(cfg)
    except Exception as err:  # noqa: BLE001 - a variant that does not build is the first finding
        cause = err.__cause__ or err
        return [("builds", False, " ".join(f"{type(cause).__name__}: {cause}".split()))]
    results = [("builds", True, f"{type(model.bottleneck).__name__}, {sum(p.numel() for p in model.parameters())} parameters")]
    for name, check in CHECKS.items():
        try:
            results.append((name, True, check(model, batch)))
        except Exception as err:  # noqa: BLE001 - each check reports its own failure and the others still run
            results.append((name, False, " ".join(f"{type(err).__name__}: {err}".split())))
    return results


def compose(overrides: list[str]) -> DictConfig:
    """conf/train.yaml with data=digits (unless data= is given), logger=none and the overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from aelab import CONF_DIR

    base = [] if any(o.startswith("data=") for o in overrides) else ["data=digits"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose(config_name="train", overrides=[*base, "logger=none", *overrides])


def main(argv: list[str] | None = None) -> None:
    """Print one verdict line per check; exit 1 when any fails."""
    cfg = compose(list(sys.argv[1:] if argv is None else argv))
    results = run_checks(cfg)
    for name, ok, detail in results:
        print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")
    if not all(ok for _, ok, _ in results):
        raise SystemExit(1)
