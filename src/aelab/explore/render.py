"""Model outputs as HTML for the explorer's page: images as PNG data URIs (exact pixels, one request per update),
audio clips as a waveform plus a player, table rows as bar charts."""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import torch

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def data_uri(payload: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode()}"


def png(x: torch.Tensor) -> bytes:
    """An image (C, H, W) in [0, 1] as PNG bytes: clipped, rounded to 8 bits, grayscale when C = 1."""
    from PIL import Image

    from aelab.data.base import to_pixels

    buffer = io.BytesIO()
    Image.fromarray(to_pixels(x)).save(buffer, format="png")
    return buffer.getvalue()


def figure_png(draw, size: tuple[float, float] = (2.6, 1.3)) -> bytes:
    """A small matplotlib figure drawn by `draw(ax)` as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=80)
    draw(ax)
    fig.tight_layout(pad=0.2)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def wav(clip: np.ndarray, rate: int) -> bytes:
    from aelab.data.audio_io import audio_library

    soundfile = audio_library("the explorer's audio players")
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(clip, -1, 1), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def item(x: torch.Tensor, kind: str, caption: str = "", rate: int = 16000, size: int = 140, cls: str = "") -> str:
    """One example (*shape) as a captioned HTML figure: an image, a waveform with a player, or a bar chart."""
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    if kind == "image":
        body = f'<img class="px" src="{data_uri(png(x), "image/png")}" width="{size}">'
    elif kind == "signal":
        clip = x.reshape(-1).numpy()
        plot = figure_png(lambda ax: (ax.plot(clip, lw=0.5), ax.set_axis_off()))
        body = (f'<img src="{data_uri(plot, "image/png")}" width="{size * 1.5:.0f}"><br>'
                f'<audio controls src="{data_uri(wav(clip, rate), "audio/wav")}"></audio>')
    else:
        row = x.reshape(-1).numpy()
        plot = figure_png(lambda ax: (ax.bar(range(len(row)), row, width=0.9), ax.tick_params(labelsize=6)))
        body = f'<img src="{data_uri(plot, "image/png")}" width="{size * 1.5:.0f}">'
    return f'<figure class="{cls}">{body}{cap}</figure>'


def strip(xs: torch.Tensor, kind: str, captions: list[str], rate: int = 16000, size: int = 84) -> str:
    """A row of examples (B, *shape) with a caption each."""
    return '<div class="strip">' + "".join(item(x, kind, c, rate, size) for x, c in zip(xs, captions)) + "</div>"


def table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='metrics'><tr>{head}</tr>{body}</table>"


def scatter_png(xy: np.ndarray, colours: list[str], title: str) -> bytes:
    """A static latent map (for the compare view)."""
    def draw(ax):
        ax.scatter(xy[:, 0], xy[:, 1], c=colours, s=6)
        ax.set_title(title, fontsize=7)
        ax.tick_params(labelsize=6)

    return figure_png(draw, size=(3.2, 3.2))
