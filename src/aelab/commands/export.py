"""Export a trained model for use outside aelab (`aelab-apply mode=export`): the encoder (x -> code), the decoder
(code -> reconstruction) and the whole autoencoder (x -> reconstruction), each as a torch.export program (.pt2,
`torch.export.load`) and as ONNX (`torch.onnx.export(dynamo=True)`), with a dynamic batch size. Each ONNX file is
run with onnxruntime on a fresh batch and compared with the PyTorch output (the largest absolute difference is
recorded). ONNX needs the `aelab[export]` extra (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from aelab.core.errors import ConfigError
from aelab.core.extras import require

log = logging.getLogger(__name__)

TOLERANCE = 1e-4  # largest |ONNX - PyTorch| accepted, on outputs in [0, 1] or codes of order 1


class Part(nn.Module):
    """One function of the trained module (encode, decode, reconstruct) as a module of its own."""

    def __init__(self, model: nn.Module, fn: Callable[[nn.Module, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.model, x)


def onnx_check(path: Path, module: nn.Module, x: torch.Tensor) -> float:
    """Largest absolute difference between onnxruntime's output for x and the module's."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        want = module(x)
    return float((torch.from_numpy(got) - want).abs().max())


def require_onnx() -> None:
    """onnx, onnxscript and onnxruntime importable, else the one-line MissingExtraError naming `aelab[export]`."""
    for module in ("onnx", "onnxscript", "onnxruntime"):
        require(module, "aelab-apply mode=export")


def export(model: nn.Module, shape: list[int], out: Path) -> tuple[list[str], dict[str, float]]:
    """Write <part>.pt2 and <part>.onnx for encoder, decoder and autoencoder into `out`; return the files and
    the ONNX-vs-PyTorch differences. MissingExtraError when the ONNX packages are missing, ConfigError when a
    difference is too big."""
    require_onnx()
    model = model.cpu().eval()
    d = int(model.hparams.latent_dim)
    parts = {"encoder": (Part(model, lambda m, x: m.encode(x)), shape),
             "decoder": (Part(model, lambda m, z: m.decode(z)), [d]),
             "autoencoder": (Part(model, lambda m, x: m.reconstruct(x)), shape)}
    written, checks = [], {}
    generator = torch.Generator().manual_seed(0)
    for name, (module, in_shape) in parts.items():
        example = torch.rand(2, *in_shape, generator=generator)
        dynamic = ({0: torch.export.Dim("batch", min=1)},)
        program = torch.export.export(module, (example,), dynamic_shapes=dynamic)
        torch.export.save(program, out / f"{name}.pt2")
        torch.onnx.export(module, (example,), out / f"{name}.onnx", dynamo=True, dynamic_shapes=dynamic,
                          input_names=["input"], output_names=["output"], verbose=False)
        checks[name] = onnx_check(out / f"{name}.onnx", module, torch.rand(5, *in_shape, generator=generator))
        if checks[name] > TOLERANCE:
            raise ConfigError(f"the ONNX {name} differs from PyTorch by {checks[name]:.3g} (> {TOLERANCE})")
        written += [f"{name}.pt2", f"{name}.onnx"] + ([f"{name}.onnx.data"] if (out / f"{name}.onnx.data").is_file() else [])
        log.info("exported %s: torch.export and ONNX (onnxruntime matches PyTorch to %.2g)", name, checks[name])
    return written, checks
