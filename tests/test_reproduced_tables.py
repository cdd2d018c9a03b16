"""Reproduced tables: metric directions, published numbers beside ours, docs/results.md, the paper experiments."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from aelab.reporting import published as paper
from aelab.reporting.report import default_metrics, report
from aelab.reporting.report import main as report_main
from helpers import ROOT, read_result, run_cli, write_run

PAPER = sorted(p.stem for p in (ROOT / "conf" / "experiment" / "paper").glob("*.yaml"))


def test_directions_come_from_the_records_not_from_names(tmp_path: Path) -> None:
    # accuracies and errors named so that a name-based guess would get both wrong; "score" declares nothing
    declared = {"test/probe_acc": True, "test/accuracy_loss": False}
    write_run(tmp_path, 0, {"model": "vq_vae", "latent_dim": 8}, {"test/probe_acc": 0.60, "test/accuracy_loss": 0.9,
                                                                 "test/score": 5.0}, declared)
    write_run(tmp_path, 1, {"model": "ae", "latent_dim": 8}, {"test/probe_acc": 0.80, "test/accuracy_loss": 0.1,
                                                             "test/score": 1.0}, declared)
    report(tmp_path, ["test/probe_acc", "test/accuracy_loss", "test/score"])
    lines = (tmp_path / "report.md").read_text().splitlines()
    assert "test/probe_acc ↑" in lines[0] and "test/accuracy_loss ↓" in lines[0]
    assert "test/score |" in lines[0] + "|" and "test/score ↑" not in lines[0] and "test/score ↓" not in lines[0]
    ae = next(line for line in lines if line.startswith("| ae "))
    vq = next(line for line in lines if line.startswith("| vq_vae "))
    assert "**0.8 ± 0 (n=1)**" in ae and "**0.1 ± 0 (n=1)**" in ae  # best accuracy (max) and best loss (min)
    assert "**" not in vq  # the worst run is not bolded, and an undeclared metric is not ranked at all


def test_default_columns_are_the_test_metrics_that_completed_runs_rank(tmp_path: Path) -> None:
    ae = {"train/loss": 0.3, "val/mse": 0.2, "test/loss": 0.3, "test/mse": 0.2, "test/posterior_var": 1.0,
          "test/psnr": 12.0, "test/probe_acc": 0.7}
    ae_ways = {"train/loss": False, "val/mse": False, "test/loss": False, "test/mse": False, "test/posterior_var": None,
               "test/psnr": True, "test/probe_acc": True}
    vae = {**ae, "test/mse": 0.1, "test/psnr": 14.0, "test/probe_acc": 0.6, "train/kl": 2.0, "test/kl": 2.0,
           "test/fid": 40.0, "test/si_sdr_gain@0.5": 3.0, "test/active_units": 4.0}
    vae_ways = {**ae_ways, "train/kl": False, "test/kl": False, "test/fid": False, "test/si_sdr_gain@0.5": True,
                "test/active_units": None}
    write_run(tmp_path, 0, {"model": "ae", "latent_dim": 8}, ae, ae_ways)
    write_run(tmp_path, 1, {"model": "vae", "latent_dim": 8}, vae, vae_ways)
    write_run(tmp_path, 2, {"model": "dae", "latent_dim": 8}, {"test/lost": 1.0}, {"test/lost": True}, state="failed")
    # ranked test metrics in the records' order; not val/, not unranked stats, not the objective's terms (their
    # train/ twins), not a failed run's
    expected = ["test/mse", "test/psnr", "test/probe_acc", "test/fid", "test/si_sdr_gain@0.5"]
    out = report(tmp_path)
    header = next(csv.reader(open(out["csv"])))
    assert header == ["model", "latent_dim", *(f"{m}_{s}" for m in expected for s in ("mean", "std", "n"))]
    md = out["md"].read_text().splitlines()
    assert md[0] == ("| model | latent_dim | test/mse ↓ | test/psnr ↑ | test/probe_acc ↑ | test/fid ↓ "
                     "| test/si_sdr_gain@0.5 ↑ |")
    assert md[2] == "| ae | 8 | 0.2 ± 0 (n=1) | 12 ± 0 (n=1) | **0.7 ± 0 (n=1)** | – | – |"
    assert md[3] == ("| vae | 8 | **0.1 ± 0 (n=1)** | **14 ± 0 (n=1)** | 0.6 ± 0 (n=1) | **40 ± 0 (n=1)** "
                     "| **3 ± 0 (n=1)** |")
    report_main([str(tmp_path), "--metrics", "test/loss", "test/active_units"])  # chosen columns, unranked too
    assert next(csv.reader(open(out["csv"])))[2:] == [f"{m}_{s}" for m in ("test/loss", "test/active_units")
                                                      for s in ("mean", "std", "n")]


@pytest.mark.slow
def test_training_records_declare_every_metric_direction(tmp_path: Path) -> None:
    result = run_cli("aelab-train", ["data=digits", "model/arch=mlp", "model=vae", "trainer.max_epochs=1",
                                     "logger=none", "callbacks.progress=null", "eval=[probe]",
                                     f"hydra.run.dir={tmp_path}"])
    assert result.returncode == 0, result.stderr[-2000:]
    record = read_result(tmp_path)
    assert set(record["metrics"]) == set(record["higher_is_better"])
    assert record["higher_is_better"]["val/posterior_var"] is None  # a statistic, not ranked
    assert record["higher_is_better"]["test/probe_acc"] is True and record["higher_is_better"]["test/knn_acc"] is True
    assert record["higher_is_better"]["test/mse"] is False and record["higher_is_better"]["test/psnr"] is True
    assert record["higher_is_better"]["val/elbo"] is True and record["higher_is_better"]["val/kl"] is False
    # the report's default columns for this record: no loss, recon, kl or elbo (the objective), no posterior_var
    shown = default_metrics([(tmp_path, record)])
    assert shown == ["test/mse", "test/psnr", "test/ssim", "test/probe_acc", "test/knn_acc"]


REFERENCE = {"name": "toy", "title": "Toy table", "citation": "A. Author (2020)", "table": "Table 9",
             "metric": "test/auroc", "protocol": "theirs", "differences": "ours",
             "aggregate": {"over": "normal_classes", "label": "mean"},
             "rows": [{"method": "P", "match": {"normal_classes": "0"}, "value": 0.9, "comparable": True},
                      {"method": "P", "match": {"normal_classes": "mean"}, "value": 0.8, "comparable": True},
                      {"method": "Q", "match": {"model": "ae", "normal_classes": "mean"}, "value": 0.5,
                       "comparable": False},
                      {"method": "R", "match": {"model": "gan"}, "value": 0.7, "comparable": True}]}


def toy_sweep(sweep: Path) -> None:
    """ae on classes 0 and 1 with seeds 0 and 1, plus class 0 of seed 2 alone (so seed 2 has no class mean)."""
    values = {(0, 0): 0.95, (1, 0): 0.75, (0, 1): 0.93, (1, 1): 0.71, (0, 2): 0.97}
    directions = {"test/auroc": True}
    for job, ((cls, seed), v) in enumerate(values.items()):
        write_run(sweep, job, {"model": "ae", "latent_dim": 16, "normal_classes": str(cls)}, {"test/auroc": v},
                  directions, seed=seed, reference=REFERENCE)
    write_run(sweep, 9, {"model": "ae", "latent_dim": 16, "normal_classes": "1"}, {}, directions, seed=2,
              reference=REFERENCE, state="failed")


def test_reference_rows_are_set_beside_ours_with_differences_only_where_comparable(tmp_path: Path) -> None:
    toy_sweep(tmp_path)
    out = report(tmp_path)
    lines = list(csv.DictReader(open(out["comparison"])))
    by = {(r["method"], r["row"].split("normal_classes=")[1]): r for r in lines}
    class0 = by[("P", "0")]
    assert float(class0["ours_mean"]) == pytest.approx((0.95 + 0.93 + 0.97) / 3) and class0["n"] == "3"
    assert float(class0["difference"]) == pytest.approx((0.95 + 0.93 + 0.97) / 3 - 0.9)
    mean = by[("P", "mean")]  # per seed the mean over both classes (seeds 0 and 1 only), then over seeds
    assert float(mean["ours_mean"]) == pytest.approx(((0.95 + 0.75) / 2 + (0.93 + 0.71) / 2) / 2) and mean["n"] == "2"
    assert float(mean["difference"]) == pytest.approx(float(mean["ours_mean"]) - 0.8)
    assert by[("Q", "mean")]["difference"] == ""  # context only: no difference
    md = out["md"].read_text()
    assert "context only" in md and "Published rows that match none of our runs" in md and "R = 0.7" in md
    assert "A. Author (2020); Table 9" in md and "**Their protocol.** theirs" in md
    facts = json.loads(out["paper"].read_text())["facts"]
    assert facts["completed"] == 5 and facts["jobs"] == 6 and facts["seeds"] == [0, 1, 2]
    assert facts["wall_time_s"] == pytest.approx(1014.0 - 1000.0)


def test_results_page_is_rendered_from_the_published_files(tmp_path: Path) -> None:
    toy_sweep(tmp_path / "sweep")
    report(tmp_path / "sweep")
    page = paper.publish(tmp_path / "sweep", tmp_path / "results")
    text = page.read_text()
    assert page == tmp_path / "results.md" and text == paper.render_page(tmp_path / "results")
    assert "## Toy table" in text and "| P | " in text and "+0.0500" in text and "+0.0350" in text
    (tmp_path / "results" / "toy" / "comparison.csv").write_text(
        (tmp_path / "results" / "toy" / "comparison.csv").read_text().replace("0.9,", "0.91,"))
    assert paper.render_page(tmp_path / "results") != text  # the page follows its files


def test_a_references_figures_are_published_from_each_models_lowest_seed(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    for job, (model, seed) in enumerate([("ae", 1), ("ae", 0), ("vae", 2)]):
        write_run(sweep, job, {"model": model, "latent_dim": 16}, {"test/auroc": 0.5}, {"test/auroc": True}, seed=seed,
                  reference={**REFERENCE, "aggregate": None, "figures": ["traversals.png"]})
        (sweep / str(job) / "traversals.png").write_bytes(f"{model} {seed}".encode())
    report(sweep)
    text = paper.publish(sweep, tmp_path / "results").read_text()
    published = tmp_path / "results" / "toy"
    assert (published / "ae_traversals.png").read_bytes() == b"ae 0" and (published / "vae_traversals.png").read_bytes() == b"vae 2"
    assert "![ae_traversals.png](results/toy/ae_traversals.png)" in text and "**vae**" in text


def test_docs_results_page_agrees_with_its_files() -> None:
    docs = ROOT / "docs" / "results"
    assert (ROOT / "docs" / "results.md").read_text() == paper.render_page(docs)
    assert {p.name for p in docs.iterdir()} >= {"compression"}


# Each paper experiment: composed and run end to end for a few batches (all its rows, the first latent size, seed
# 0, class 0), so a table cannot rot unnoticed. Evaluator sizes are cut to keep it to about a minute each.
SMALL = {"compression": [], "one_class": ["data.normal_classes=[0]"],
         "recognition": ["eval.probe.max_train=500", "eval.probe.mlp_hidden=[10]"],
         "likelihood": ["eval.likelihood.k=10", "eval.likelihood.max_examples=200"],
         "generation": ["eval.generation.n=300", "eval.generation.classifier_steps=20", "callbacks.samples=null"],
         "disentanglement": ["eval.disentanglement.max_examples=400", "eval.disentanglement.n_train=300",
                             "eval.disentanglement.n_eval=100", "eval.disentanglement.n_estimators=5"],
         "posteriors": ["eval.likelihood.k=10", "eval.likelihood.max_examples=200"],
         "quantizers": []}
SPEECH_VOICES = ("en+m1", "en+f2", "en-us+f4", "en-gb-scotland+m2", "en+Linda")  # data=speech's 3 test voices + 2


def data_dir_for(name: str, tmp_path: Path) -> list[str]:
    """The quantizer table's speech row reads a small spoken-word set made here, not the whole set (minutes)."""
    if name != "quantizers":
        return []
    from aelab.data.speech import WORDS, make_speech

    make_speech(tmp_path / "data" / "speech", words=WORDS[:10], voices=SPEECH_VOICES, speeds=(140, 180), pitches=(50,))
    return [f"paths.data_dir={tmp_path / 'data'}"]


@pytest.mark.slow
@pytest.mark.parametrize("name", PAPER)
def test_paper_experiment_runs_a_few_batches(name: str, tmp_path: Path) -> None:
    params = yaml.safe_load((ROOT / "conf" / "experiment" / "paper" / f"{name}.yaml").read_text())
    swept = params["hydra"]["sweeper"]["params"]
    first = [f"{k}={str(v).split(',')[0]}" for k, v in swept.items() if k in ("model.latent_dim", "seed")]
    cache = [f"eval.generation.cache_dir={tmp_path}/nets"] if name == "generation" else []  # not the real cache
    result = run_cli("aelab-train", ["-m", f"experiment=paper/{name}", *first, *SMALL[name], *cache, "debug=fast",
                                     *data_dir_for(name, tmp_path / "own"), "logger=none", f"hydra.sweep.dir={tmp_path}"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = [read_result(p.parent) for p in tmp_path.glob("*/result.json")]
    rows = str(swept.get("model") or swept.get(f"+experiment/paper/{name}")).split(",")
    assert len(records) == len(rows) and all(r["state"] == "completed" for r in records)
    assert {r["run"]["model"] for r in records} >= {"pca", "ocsvm", "raw"} & {r.split("/")[-1] for r in rows}
    out = report(tmp_path)
    reference = yaml.safe_load((ROOT / "conf" / "reference" / f"{name}.yaml").read_text())
    assert json.loads(out["paper"].read_text())["reference"]["citation"] == reference["citation"]
    assert all(m in r["metrics"] for m in paper.metrics(reference) for r in records)


# ---- the baselines and scores that the tables add, against closed forms -------------------------------------------
def test_pca_baseline_error_is_the_sum_of_the_discarded_eigenvalues() -> None:
    import numpy as np
    import torch
    from sklearn.datasets import load_digits

    from aelab.baselines.pca import PCABaseline

    x = torch.from_numpy(load_digits().data / 16.0).float().view(-1, 1, 8, 8)
    pca = PCABaseline(name="pca", latent_dim=10, in_shape=[1, 8, 8])
    flat = x.flatten(1).double().numpy()
    pca.fit(flat, flat)
    eig = np.sort(np.linalg.eigvalsh(np.cov(flat, rowvar=False, bias=True)))[::-1]  # (64,) descending
    mse = float((pca.reconstruct(x) - x).double().pow(2).mean())
    assert mse == pytest.approx(eig[10:].sum() / 64, rel=1e-4)
    metrics, directions = pca.test_metrics(x, x)
    assert metrics["test/mse"] == pytest.approx(mse, rel=1e-4) and directions == {"test/mse": False, "test/psnr": True,
                                                                                  "test/ssim": True}


def test_one_class_svm_baseline_separates_far_clusters_without_labels() -> None:
    import numpy as np
    import torch

    from aelab.baselines.raw import RawOneClassSVM
    from aelab.evals.anomaly import detection_metrics

    rng = np.random.default_rng(0)
    normal, far = rng.normal(0, 1, (300, 1, 4, 4)), rng.normal(6, 1, (100, 1, 4, 4))
    svm = RawOneClassSVM(name="ocsvm", latent_dim=16, in_shape=[1, 4, 4], nu=0.1)
    svm.fit(normal.reshape(300, -1), normal.reshape(300, -1))
    x = torch.from_numpy(np.concatenate([normal, far])).float()
    scores = svm.anomaly_scores(x, x)["ocsvm"]
    labels = torch.arange(400) >= 300
    assert detection_metrics(scores, labels)["auroc"] == pytest.approx(1.0)
    assert float((scores[:300] > 0).float().mean()) == pytest.approx(0.1, abs=0.03)  # nu bounds the outlier fraction


def test_combined_score_standardises_on_validation_scores() -> None:
    import torch

    from aelab.evals.anomaly import combined

    val = {"recon": torch.tensor([1.0, 3.0]), "latent": torch.tensor([10.0, 30.0])}
    test = {"recon": torch.tensor([2.0, 5.0]), "latent": torch.tensor([20.0, 10.0])}
    sd_r, sd_l = float(val["recon"].std()), float(val["latent"].std())
    expected = torch.tensor([0.0 + 0.0, 3.0 / sd_r - 10.0 / sd_l])
    assert torch.allclose(combined(test, val), expected)
    assert combined({"recon": test["recon"]}, val) is None  # no code density: no combination


def test_choice_check_accepts_options_in_sub_folders() -> None:
    from aelab.cli import check_choices

    assert check_choices(["experiment=paper/compression", "model=baseline/pca", "+experiment/paper/compression=pca"]) is None
    assert "unknown experiment 'paper/nope'" in check_choices(["experiment=paper/nope"])
    assert "unknown model 'baseline/svm'" in check_choices(["model=baseline/svm"])


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "conf" / "reference").glob("*.yaml")))
def test_reference_files_are_complete_and_keyed_like_our_runs(name: str) -> None:
    from aelab.reporting.report import KEYS

    ref = yaml.safe_load((ROOT / "conf" / "reference" / f"{name}.yaml").read_text())
    assert ref["name"] == name and all(ref.get(k) for k in ("title", "citation", "table", "metric", "protocol", "differences"))
    assert "higher_is_better" not in ref  # ranks follow the direction our runs declare for the metric
    for row in ref["rows"]:
        assert row["method"] and isinstance(row["value"], float) and isinstance(row["comparable"], bool)
        assert row["match"] and set(row["match"]) <= set(KEYS), row
    experiment = yaml.safe_load((ROOT / "conf" / "experiment" / "paper" / f"{name}.yaml").read_text())
    assert {"override /reference": name} in experiment["defaults"]  # the experiment of the same name selects it


@pytest.mark.parametrize("name", PAPER)
def test_each_table_has_the_papers_schedule_for_a_gpu(name: str) -> None:
    from helpers import compose_cfg

    cpu, gpu = compose_cfg([f"experiment=paper/{name}"]), compose_cfg([f"experiment=paper/gpu/{name}"])
    assert gpu.trainer.accelerator == "gpu" and gpu.trainer.max_epochs > cpu.trainer.max_epochs
    assert gpu.reference.name == cpu.reference.name == name and gpu.eval.keys() == cpu.eval.keys()  # same evaluators


def test_runs_that_differ_in_another_override_are_separate_rows(tmp_path: Path) -> None:
    """Two colour spaces of one model must not be averaged as if they were seeds of one row."""
    for job, (space, seed, psnr) in enumerate([("rgb", 0, 28.0), ("rgb", 1, 29.0), ("ycbcr", 0, 31.0), ("ycbcr", 1, 30.0)]):
        write_run(tmp_path, job, {"model": "ae", "latent_dim": 64}, {"test/psnr": psnr}, {"test/psnr": True}, seed=seed)
        path = tmp_path / str(job) / "result.json"
        record = json.loads(path.read_text())
        record["overrides"] = ["experiment=photo_colorize", f"task.space={space}", f"seed={seed}"]
        path.write_text(json.dumps(record))
    report(tmp_path, ["test/psnr"])
    lines = (tmp_path / "report.md").read_text().splitlines()
    assert "task.space" in lines[0] and "experiment" not in lines[0]
    assert any(line.startswith("| ae ") and "| rgb |" in line and "28.5 ± 0.71 (n=2)" in line for line in lines)
    assert any("| ycbcr |" in line and "**30.5 ± 0.71 (n=2)**" in line for line in lines)
