"""The categorical Markov-chain code density: fitted on a known chain it recovers the transition matrices, it
samples the frequencies it fitted, scores a code by hand-computable counts, and its state survives a checkpoint."""

from __future__ import annotations

import io
import itertools
import math
from pathlib import Path

import pytest
import torch

from aelab.core.build import build
from aelab.core.errors import ConfigError
from aelab.densities import CategoricalChain, LatentGMM
from helpers import compose_cfg

INITIAL = torch.tensor([0.5, 0.3, 0.2])
TRANSITIONS = [torch.tensor([[0.7, 0.1, 0.1, 0.1], [0.2, 0.2, 0.5, 0.1], [0.05, 0.05, 0.1, 0.8]]),
               torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.5, 0.5], [0.2, 0.8]])]
VALUES = [torch.tensor([[k, -0.5 * k] for k in range(n)]) for n in (3, 4, 2)]  # 2 dims per position, sorted rows


def draw_chain(n: int, seed: int = 0) -> torch.Tensor:
    """n codes (n, 6): 3 positions of 2 dims from the chain INITIAL, TRANSITIONS, position i's values VALUES[i]."""
    gen = torch.Generator().manual_seed(seed)
    c = [torch.multinomial(INITIAL, n, replacement=True, generator=gen)]
    for matrix in TRANSITIONS:
        c.append(torch.multinomial(matrix[c[-1]], 1, generator=gen).squeeze(1))  # (n, K) -> (n,)
    return torch.cat([VALUES[i][idx] for i, idx in enumerate(c)], dim=1).float()  # 3 x (n, 2) -> (n, 6)


def test_fit_on_a_known_markov_chain_recovers_its_transitions() -> None:
    density = CategoricalChain(position=2, alpha=0.0).fit(draw_chain(40_000))
    assert [len(v) for v in density.values] == [3, 4, 2]
    torch.testing.assert_close(density.initial().float(), INITIAL, atol=0.01, rtol=0)
    for i, matrix in enumerate(TRANSITIONS, start=1):
        torch.testing.assert_close(density.transition(i).float(), matrix, atol=0.015, rtol=0)
        torch.testing.assert_close(density.transition(i).sum(1), torch.ones(len(matrix), dtype=torch.float64))


def test_samples_have_the_fitted_frequencies() -> None:
    density = CategoricalChain(position=2, alpha=0.5).fit(draw_chain(300))  # smoothing: unseen pairs get mass too
    torch.manual_seed(0)
    refit = CategoricalChain(position=2, alpha=0.0).fit(density.sample(60_000))
    torch.testing.assert_close(refit.initial(), density.initial(), atol=0.01, rtol=0)
    for i in (1, 2):
        torch.testing.assert_close(refit.transition(i), density.transition(i), atol=0.015, rtol=0)


def test_log_prob_of_known_codes_equals_the_hand_computed_value() -> None:
    density = CategoricalChain(position=1, alpha=0.5).fit(torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 2.0], [1.0, 2.0]]))
    # p(c1 = 0) = (3 + .5) / (4 + .5 * 2); p(c2 = 1 | c1 = 0) = (2 + .5) / (3 + .5 * 2)
    # p(c1 = 1) = (1 + .5) / 5;            p(c2 = 1 | c1 = 1) = (0 + .5) / (1 + .5 * 2)   (a pair never seen)
    expected = torch.tensor([math.log(0.7 * 0.625), math.log(0.3 * 0.25)])
    torch.testing.assert_close(density.log_prob(torch.tensor([[0.0, 1.0], [1.0, 1.0]])), expected)
    torch.testing.assert_close(density.log_prob(torch.tensor([[1.1, 1.2]])), expected[1:])  # unseen values: nearest
    every = torch.tensor(list(itertools.product([0.0, 1.0], [1.0, 2.0])))
    assert density.log_prob(every).exp().sum().item() == pytest.approx(1.0)  # a distribution over the seen values


def test_state_round_trips_through_a_weights_only_load() -> None:
    density = CategoricalChain(position=2, alpha=0.1).fit(draw_chain(500))
    buffer = io.BytesIO()
    torch.save(density.state(), buffer)
    buffer.seek(0)
    loaded = CategoricalChain()
    loaded.load_state(torch.load(buffer, weights_only=True))
    codes = draw_chain(50, seed=1)
    torch.testing.assert_close(loaded.log_prob(codes), density.log_prob(codes))
    torch.manual_seed(3)
    first = density.sample(20)
    torch.manual_seed(3)
    assert torch.equal(loaded.sample(20), first)
    with pytest.raises(ConfigError, match="the stored code density is a CategoricalChain, the model's is LatentGMM"):
        LatentGMM().load_state(density.state())


def test_refuses_codes_that_do_not_split_into_positions_and_bad_settings() -> None:
    with pytest.raises(ConfigError, match="d a multiple of model.density.position=4"):
        CategoricalChain(position=4).fit(torch.zeros(10, 6))
    with pytest.raises(ConfigError, match="model.density.alpha must be >= 0"):
        CategoricalChain(alpha=-1.0)


@pytest.mark.parametrize(("variant", "position"), [("vq_vae", 4), ("fsq_vae", 4), ("rfsq_vae", 4), ("gumbel_vae", 4),
                                                   ("semantic_hashing", 1)])
def test_discrete_variants_sample_through_the_categorical_density(variant: str, position: int, tmp_path: Path) -> None:
    model = build(compose_cfg(["data=digits", f"model={variant}"], tmp_path).model)
    assert isinstance(model.density, CategoricalChain) and model.density.position == position
    assert model.samples_from_density


def test_a_quantizer_without_a_density_says_it_cannot_sample(tmp_path: Path) -> None:
    model = build(compose_cfg(["data=digits", "model=fsq_vae", "model.density=null"], tmp_path).model)
    with pytest.raises(ConfigError, match="^fsq_vae has no prior and model.density is null: nothing to sample from$"):
        model.sample(2)
