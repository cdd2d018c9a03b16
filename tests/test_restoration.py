"""Restoration parts: the skip-connected arch (model/arch=unet), colour spaces for colorization, classical baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aelab.core.build import build
from aelab.data.colorspace import to_rgb, to_space
from aelab.data.tasks import Colorize
from helpers import compose_cfg


def model_on(arch: str, *overrides: str, data: str = "digits"):
    torch.manual_seed(0)
    return build(compose_cfg([f"data={data}", f"model/arch={arch}", "model.latent_dim=8", *overrides]).model)


def test_unet_with_skips_off_is_the_conv_autoencoder() -> None:
    conv = model_on("conv", "model.encoder.channels=[8,16]", data="fashion_mnist")
    plain = model_on("unet", "model.encoder.channels=[8,16]", "model.encoder.skips=false", data="fashion_mnist")
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in conv.parameters())
    conv_state, plain_state = conv.state_dict(), plain.state_dict()
    assert list(plain_state) == list(conv_state)
    assert all(torch.equal(plain_state[k], conv_state[k]) for k in conv_state)  # same seed, same modules, same order
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(plain.reconstruct(x), conv.reconstruct(x))


@pytest.mark.parametrize("shape", [[1, 28, 28], [3, 33, 17], [1, 8, 8]])
def test_skips_have_the_sizes_of_the_decoder_maps_they_join(shape: list[int]) -> None:
    from aelab.nets.unet import UNetDecoder, UNetEncoder

    enc = UNetEncoder(shape, [4, 8, 16], torch.nn.ReLU)
    dec = UNetDecoder(shape, 5, [4, 8, 16], torch.nn.ReLU)
    x = torch.rand(2, *shape)
    h, skips = enc.with_skips(x)
    assert torch.equal(h, enc(x)) and torch.equal(skips[0], x) and len(skips) == 3  # input + all stages but the bottom
    assert skips[1].shape == enc.net[:2](x).shape and skips[2].shape == enc.net[:4](x).shape  # conv+act per stage
    assert dec(torch.randn(2, 5), skips).shape == x.shape


def test_outermost_skip_adds_the_input_and_inner_skips_reach_the_output() -> None:
    model = model_on("unet", data="fashion_mnist").eval()
    last = model.decoder.net[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(model.reconstruct(x), x)  # Gaussian likelihood: mean = decoder output = 0 + input
    model = model_on("unet", data="fashion_mnist").eval()
    h, skips = model.features(x)
    z = model.bottleneck.embed(h)
    inner_only = model.decoder(z, [torch.zeros_like(skips[0]), *skips[1:]])
    assert not torch.allclose(inner_only, model.decoder(z))  # the 14x14 skip changes the output
    assert torch.equal(model.decode(z), model.decoder(z))  # decode(z) alone takes no skips


def test_skip_dropout_decodes_dropped_examples_from_their_code_alone() -> None:
    from aelab.nets.unet import UNetDecoder, UNetEncoder

    enc, dec = UNetEncoder([1, 12, 12], [4, 8], torch.nn.ReLU), UNetDecoder([1, 12, 12], 6, [4, 8], torch.nn.ReLU, skip_dropout=0.5)
    x, z = torch.rand(64, 1, 12, 12), torch.randn(64, 6)
    skips = enc.with_skips(x)[1]
    alone, full = dec(z), dec.eval()(z, skips)
    torch.manual_seed(3)
    out = dec.train()(z, skips)
    dropped = torch.isclose(out, alone).flatten(1).all(1)
    kept = torch.isclose(out, full).flatten(1).all(1)
    assert bool((dropped ^ kept).all()) and 16 < int(dropped.sum()) < 48  # each example: all skips or none, p = 0.5


def test_code_alone_decodes_better_than_the_mean_image_after_training_with_skip_dropout() -> None:
    from sklearn.datasets import load_digits

    model = model_on("unet", "model.encoder.channels=[16,32]")
    x = torch.from_numpy(load_digits().data[:512] / 16.0).float().view(-1, 1, 8, 8)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        optimizer.zero_grad()
        model.compute_loss({"x": x, "target": x}, "train")[0].backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        alone = float((model.decode(model.encode(x)) - x).pow(2).mean())
        with_skips = float((model.reconstruct(x) - x).pow(2).mean())
    best_constant = float((x.mean(0, keepdim=True) - x).pow(2).mean())
    assert alone < 0.5 * best_constant and with_skips < alone


def test_colour_spaces_round_trip_and_match_known_conversions() -> None:
    from skimage.color import rgb2lab

    rgb = torch.rand(2, 3, 5, 7, dtype=torch.float64)
    for space in ("ycbcr", "lab"):
        assert torch.allclose(to_rgb(to_space(rgb, space), space), rgb, atol=1e-5)
    lab = (to_space(rgb, "lab") - torch.tensor([0, 0.5, 0.5]).view(1, 3, 1, 1).double()) * torch.tensor([100, 256, 256]).view(1, 3, 1, 1)
    assert np.allclose(lab.permute(0, 2, 3, 1).numpy(), rgb2lab(rgb.permute(0, 2, 3, 1).numpy()), atol=1e-3)
    ycbcr = to_space(rgb, "ycbcr")
    assert torch.allclose(ycbcr[:, 0], 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2])
    gray = torch.full((1, 3, 2, 2), 0.3, dtype=torch.float64)
    assert torch.allclose(to_space(gray, "ycbcr")[:, 1:], torch.tensor(0.5, dtype=torch.float64))  # neutral chroma
    assert torch.allclose(to_space(gray, "lab")[:, 1:], torch.tensor(0.5, dtype=torch.float64), atol=1e-4)


@pytest.mark.parametrize("space", ["ycbcr", "lab"])
def test_chroma_models_keep_the_input_luminance_and_train_against_the_converted_target(space: str) -> None:
    model = model_on("unet", f"task.space={space}", "task=colorize", data="shapes_color").eval()
    assert model.color_space == space
    target = torch.rand(4, 3, 32, 32)
    x = Colorize().inputs(target)
    out = model.reconstruct(x)
    assert torch.allclose(to_space(out, space)[:, 0], to_space(x, space)[:, 0], atol=1e-4)
    h, skips = model.features(x)
    raw = model.decode_with(model.bottleneck(h).z, skips)
    expected = model.likelihood.nll(raw, to_space(target, space))
    assert torch.allclose(model.reconstruction_nll(x, target)[0], expected)


def test_a_colour_space_on_gray_data_is_one_config_error() -> None:
    from aelab.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"color space lab needs colour images \(3, H, W\), got data.shape=\[1, 8, 8\]"):
        build(compose_cfg(["data=digits", "model.color_space=lab"]).model)


def test_mean_chroma_baseline_restores_images_of_one_colour_exactly() -> None:
    from aelab.baselines.restoration import MeanChroma

    colour = torch.tensor([0.8, 0.4, 0.1]).view(1, 3, 1, 1)
    target = colour * torch.rand(20, 1, 6, 6).mul(0.5).add(0.5)  # one hue, varying brightness: chroma is not constant
    target = to_rgb(torch.cat([to_space(target, "ycbcr")[:, :1], torch.full((20, 2, 6, 6), 0.0) + torch.tensor([0.4, 0.6]).view(1, 2, 1, 1)], 1), "ycbcr")
    baseline = MeanChroma(name="mean_chroma", latent_dim=1, in_shape=[3, 6, 6])
    baseline.fit(Colorize().inputs(target).flatten(1).double().numpy(), target.flatten(1).double().numpy())
    assert torch.allclose(baseline.chroma, torch.tensor([0.4, 0.6]), atol=1e-5)
    assert torch.allclose(baseline.reconstruct(Colorize().inputs(target)), target, atol=1e-5)


@pytest.mark.parametrize("method", ["nl_means", "tv"])
def test_classical_denoiser_raises_psnr_on_noisy_shapes(method: str) -> None:
    from aelab.baselines.restoration import ClassicalDenoiser
    from aelab.data.corruptions import GaussianNoise
    from aelab.evals.restoration import quality

    data = build(compose_cfg(["data=shapes"]).data)
    data.setup()
    clean = data.fixed_batch("train", 80)["target"]
    torch.manual_seed(0)
    noisy = GaussianNoise(0.2)(clean)
    denoiser = ClassicalDenoiser(method=method, factors=(0.5, 1.0), tune_images=40, name=method, latent_dim=1,
                                 in_shape=[1, 32, 32])
    denoiser.fit(noisy[:40].flatten(1).double().numpy(), clean[:40].flatten(1).double().numpy())
    assert denoiser.factor in (0.5, 1.0)
    before, after = quality(noisy[40:], clean[40:], "image"), quality(denoiser.reconstruct(noisy[40:]).clamp(0, 1), clean[40:], "image")
    assert after["psnr"] > before["psnr"] + 3 and after["ssim"] > before["ssim"]


def test_noise_over_a_range_draws_one_level_per_example_within_it() -> None:
    from aelab.core.errors import ConfigError
    from aelab.data.corruptions import GaussianNoise

    torch.manual_seed(0)
    stds = GaussianNoise([0.1, 0.5], clip=None)(torch.zeros(2000, 1, 28, 28)).flatten(1).std(1)  # (2000,) per example
    assert 0.09 < float(stds.min()) < 0.12 and 0.48 < float(stds.max()) < 0.53
    assert float(stds.mean()) == pytest.approx(0.3, abs=0.01) and float(stds.std()) > 0.1  # uniform: sd 0.4 / sqrt(12)
    assert GaussianNoise([0.1, 0.5]).at_level(0.2).std == 0.2
    with pytest.raises(ConfigError, match=r"range \[lo, hi\] with 0 <= lo <= hi, got \[0.5, 0.1\]"):
        GaussianNoise([0.5, 0.1])


def test_a_skip_connected_chroma_model_exports_with_a_dynamic_batch(tmp_path: Path) -> None:
    import onnxruntime

    from aelab.commands.export import export

    model = model_on("unet", "task=colorize", "task.space=lab", data="shapes_color")
    written, checks = export(model, [3, 32, 32], tmp_path)
    assert {"encoder.onnx", "decoder.onnx", "autoencoder.onnx", "autoencoder.pt2"} <= set(written)
    x = Colorize().inputs(torch.rand(7, 3, 32, 32))  # another batch size than the export's example
    session = onnxruntime.InferenceSession(str(tmp_path / "autoencoder.onnx"))
    got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    assert torch.allclose(got, model.eval().reconstruct(x).detach(), atol=1e-4) and max(checks.values()) < 1e-4
