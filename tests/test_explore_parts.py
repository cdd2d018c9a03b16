"""The explorer's parts without a browser: run discovery, the sliders' geometry, the map's way back to a code,
and the audio players' WAVs."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from aelab.explore.render import item
from aelab.explore.runs import ExploreError, find_runs
from aelab.explore.session import MAX_SLIDERS, STEP, Session, project


def fake_run(folder: Path, overrides: list[str], checkpoint: bool = True) -> None:
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps({"overrides": overrides, "metrics": {"test/mse": 0.5, "val/mse": 1}}))
    if checkpoint:
        (folder / "checkpoints").mkdir()
        (folder / "checkpoints" / "best.ckpt").write_bytes(b"")


def test_sweep_runs_in_job_order_named_by_what_differs(tmp_path: Path) -> None:
    for job in (0, 2, 10):
        fake_run(tmp_path / str(job), ["data=digits", f"model.latent_dim={job + 2}"])
    fake_run(tmp_path / "3", ["data=digits", "model.latent_dim=9"], checkpoint=False)
    runs, left_out = find_runs(tmp_path)
    assert [r.name for r in runs] == ["0: model.latent_dim=2", "2: model.latent_dim=4", "10: model.latent_dim=12"]
    assert runs[0].metrics == {"test/mse": 0.5}
    assert left_out == ["left out job 3: no checkpoints/best.ckpt"]
    single, _ = find_runs(tmp_path / "2")
    assert single[0].name == "2: data=digits model.latent_dim=4"  # one run: all its overrides


def test_a_damaged_record_is_named_and_the_other_runs_are_found(tmp_path: Path) -> None:
    for job in (0, 1, 2):
        fake_run(tmp_path / str(job), ["data=digits", f"model.latent_dim={job + 2}"])
    damaged = tmp_path / "1" / "result.json"
    text = damaged.read_text()
    damaged.write_text(text[: len(text) // 2])  # cut in half, as a crash or a full disk leaves it
    runs, notes = find_runs(tmp_path)
    assert [r.name for r in runs] == ["0: model.latent_dim=2", "1", "2: model.latent_dim=4"]
    assert runs[0].metrics == {"test/mse": 0.5} and runs[1].metrics == {}
    assert len(notes) == 1 and notes[0].startswith(f"damaged result.json: {damaged} is not a readable record (")
    single, notes = find_runs(tmp_path / "1")  # the damaged run on its own: opened by its folder name
    assert [r.name for r in single] == ["1"] and str(damaged) in notes[0]


def test_a_folder_of_failed_jobs_is_refused(tmp_path: Path) -> None:
    fake_run(tmp_path / "0", [], checkpoint=False)
    with pytest.raises(ExploreError, match="1 job folder"):
        find_runs(tmp_path)


def session_with_codes(codes: torch.Tensor) -> Session:
    """A Session holding only test codes: the slider and map geometry need nothing else."""
    session = Session.__new__(Session)
    session.codes, session.projections = codes, {}
    return session


@pytest.mark.parametrize("d", [5, 40])
def test_sliders_move_the_code_along_their_direction(d: int) -> None:
    codes = torch.randn(300, d, generator=torch.Generator().manual_seed(0)) * torch.linspace(3, 0.1, d)
    s = session_with_codes(codes)
    basis, what = s.slider_basis
    assert basis.shape == (min(d, MAX_SLIDERS), d)
    assert what == ("code dimension" if d <= MAX_SLIDERS else "principal direction")
    assert np.allclose(basis @ basis.T, np.eye(len(basis)), atol=1e-9)  # orthonormal directions
    base = codes[7].double().numpy()
    values = s.slider_values(base)
    assert np.allclose(s.moved(base, list(values))[0].double().numpy(), base, atol=1e-6)  # unmoved: the code itself
    values[2] += 0.37
    assert np.allclose(s.moved(base, list(values))[0].double().numpy(), base + 0.37 * basis[2], atol=1e-6)
    low, high = s.slider_ranges().T
    coords = codes.double().numpy() @ basis.T
    assert (low <= coords.min(0)).all() and (coords.max(0) <= high).all()
    assert np.allclose(np.round(values / STEP) * STEP, values)


def test_map_click_inverts_pca_and_falls_back_to_the_nearest_code_for_tsne() -> None:
    gen = torch.Generator().manual_seed(1)
    plane = torch.randn(2, 6, generator=gen)
    codes = (torch.randn(200, 2, generator=gen) @ plane + 0.5).double().numpy()  # codes on a 2-D plane in 6-D
    pca = project(codes, "PCA")
    z, how = pca.to_code(pca.xy[17], codes)
    assert np.allclose(z, codes[17], atol=1e-9) and "inverse PCA" in how  # a plane is exactly invertible
    tsne = project(codes, "t-SNE")
    z, how = tsne.to_code(tsne.xy[42] + 1e-3, codes)
    assert np.array_equal(z, codes[42]) and "nearest test code (example 42)" in how


def test_audio_player_holds_the_clip() -> None:
    clip = 0.5 * torch.sin(torch.linspace(0, 200, 4000))[None]  # (1, L)
    page = item(clip, "signal", "restored", rate=8000)
    src = page.split('<audio controls src="')[1].split('"')[0]
    wave, rate = soundfile.read(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    assert rate == 8000 and np.abs(wave - clip[0].numpy()).max() < 1 / 2**14  # 16-bit PCM
