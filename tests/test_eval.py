"""`colorize eval`: figures per model beside the gray baseline, checked against independent formulas."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from colorize_cli.cli import app
from colorize_cli.evaluate import mcnemar_p, paired_note
from colorize_cli.registry import DEFAULT_MODEL
from tests.conftest import VAL, pick


def gray_of(rgb8: np.ndarray) -> np.ndarray:
    """The neutral sRGB image with the same CIE L*, written out from the textbook formulas."""
    c = rgb8 / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    y = lin @ np.array([0.2126729, 0.7151522, 0.0721750])
    s = np.where(y <= 0.0031308, 12.92 * y, 1.055 * y ** (1 / 2.4) - 0.055)
    return np.repeat(np.round(np.clip(s, 0, 1) * 255)[..., None], 3, -1) / 255


def test_eval_reports_models_and_gray_baseline(tmp_path: Path):
    truth = tmp_path / "truth"
    truth.mkdir()
    for p in pick(VAL, 3, "cbsd68_*.png"):
        shutil.copy(p, truth / p.name)
    gray = cv2.cvtColor(cv2.imread(str(truth / sorted(os.listdir(truth))[0])), cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(truth / "zz_gray.png"), gray)  # no colour to recover: left out and listed
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- eval-table:start -->\nold\n<!-- eval-table:end -->\nrest\n")
    res = CliRunner().invoke(
        app,
        [
            "eval",
            str(truth),
            "--json",
            str(tmp_path / "r.json"),
            "--csv",
            str(tmp_path / "r.csv"),
            "--grid",
            str(tmp_path / "g.png"),
            "--readme",
            str(readme),
            "--workers",
            "0",
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    gray, model = report["results"]["gray (input)"], report["results"][DEFAULT_MODEL]
    # independent gray-baseline PSNR: 10 log10(1 / MSE) over all pixels of the three images
    psnrs = []
    assert report["skipped_gray"] == ["zz_gray.png"] and report["images"] == 3
    for p in sorted(truth.iterdir())[:3]:
        rgb8 = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB).astype(np.float64)
        psnrs.append(10 * np.log10(1 / np.mean((gray_of(rgb8) - rgb8 / 255) ** 2)))
    assert abs(gray["psnr"] - np.mean(psnrs)) < 0.02
    assert gray["colorfulness_ratio"] < 0.01 and model["colorfulness"] > 1.0
    for key in ("psnr", "ssim", "ciede2000", "colorfulness", "colorfulness_ratio", "ms_256"):
        assert np.isfinite(model[key])
    assert DEFAULT_MODEL in (tmp_path / "r.csv").read_text()
    grid = cv2.imread(str(tmp_path / "g.png"))
    assert grid is not None and grid.shape[0] == 3 * 160
    text = readme.read_text()
    assert "old" not in text and f"| {DEFAULT_MODEL} |" in text and text.startswith("intro") and text.endswith("rest\n")


def test_eval_groups_by_prefix_and_reports_classifier_agreement(tmp_path: Path):
    from colorize_cli.classifier import Classifier

    truth = tmp_path / "truth"
    truth.mkdir()
    names = ["face_1.png", "face_2.png", "house_1.png", "plain.png"]  # a name without "_" is its own group
    for src, name in zip(pick(VAL, 4, "cbsd68_*.png"), names):
        shutil.copy(src, truth / name)
    res = CliRunner().invoke(
        app, ["eval", str(truth), "--group-by", "prefix", "--json", str(tmp_path / "r.json"), "--workers", "0"]
    )
    assert res.exit_code == 0, res.output
    assert "by file-name prefix" in res.output and "house" in res.output
    report = json.loads((tmp_path / "r.json").read_text())
    groups = report["groups"]
    assert {g: v["images"] for g, v in groups.items()} == {"face": 2, "house": 1, "plain": 1}
    for row in ("gray (input)", DEFAULT_MODEL):
        overall = report["results"][row]
        for key in ("psnr", "ciede2000", "classifier_agreement"):  # the groups partition the images
            weighted = sum(v["images"] * v["results"][row][key] for v in groups.values()) / report["images"]
            assert abs(weighted - overall[key]) < 1e-9
    # gray's agreement, recomputed independently: top-1 class of the neutral image against the truth's
    judge, hits = Classifier(), []
    for name in names:
        rgb8 = cv2.cvtColor(cv2.imread(str(truth / name)), cv2.COLOR_BGR2RGB).astype(np.float64)
        hits += [judge.top1([gray_of(rgb8)])[0] == judge.top1([rgb8 / 255])[0]]
    assert report["results"]["gray (input)"]["classifier_agreement"] == pytest.approx(np.mean(hits))
    paired, n = report["results"][DEFAULT_MODEL]["classifier_vs_gray"], report["images"]
    gap = (
        report["results"][DEFAULT_MODEL]["classifier_agreement"]
        - report["results"]["gray (input)"]["classifier_agreement"]
    )
    assert paired["only_model"] - paired["only_gray"] == round(gap * n)  # the same photos, paired
    assert paired["only_model"] + paired["only_gray"] <= n and 0 < paired["p"] <= 1
    assert "McNemar" in res.output
    house = groups["house"]
    assert house["results"][DEFAULT_MODEL]["colorfulness_ratio"] == pytest.approx(
        house["results"][DEFAULT_MODEL]["colorfulness"] / house["truth_colorfulness"]
    )


def test_eval_without_classifier_leaves_the_column_out(tmp_path: Path):
    truth = tmp_path / "truth"
    truth.mkdir()
    shutil.copy(pick(VAL, 1, "cbsd68_*.png")[0], truth / "a.png")
    res = CliRunner().invoke(
        app, ["eval", str(truth), "--no-classifier", "--json", str(tmp_path / "r.json"), "--workers", "0"]
    )
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert "classifier_agreement" not in report["results"][DEFAULT_MODEL] and "groups" not in report
    assert "classifier_vs_gray" not in report["results"][DEFAULT_MODEL] and "McNemar" not in res.output


def test_mcnemar_p_is_the_exact_binomial_test_on_the_photos_the_two_disagree_on():
    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(3, 3) == 1.0
    assert mcnemar_p(0, 6) == pytest.approx(2 / 64)  # six of six one way: 2 x (1/2)^6
    assert mcnemar_p(13, 16) == mcnemar_p(16, 13) == pytest.approx(0.7111, abs=1e-4)
    assert mcnemar_p(1, 9) == pytest.approx(2 * (1 + 10) / 1024)


def test_paired_note_keeps_a_small_p_from_reading_as_zero():
    """The held-out split's 129 against 76 photos gives p 0.0003; printed with two decimals it read "p 0.00"."""
    p = mcnemar_p(129, 76)
    assert 0.0001 < p < 0.001
    report = {
        "results": {
            "unet-lab-trio": {"classifier_vs_gray": {"only_model": 129, "only_gray": 76, "p": p}},
            "unet-lab": {"classifier_vs_gray": {"only_model": 13, "only_gray": 16, "p": mcnemar_p(13, 16)}},
        }
    }
    note = paired_note(report)
    assert "unet-lab-trio 129 / 76 (p 0.0003)" in note
    assert "unet-lab 13 / 16 (p 0.71)" in note
