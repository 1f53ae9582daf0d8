"""The ImageNet classifier behind `colorize eval`'s agreement column: the wheel's EfficientNet-Lite0, read right."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colorize_cli.classifier import SIZE, Classifier, preprocess
from colorize_cli.imaging import read_image
from tests.conftest import TRAIN, pick


@pytest.fixture(scope="module")
def classifier(one_thread) -> Classifier:
    return Classifier()


@pytest.mark.parametrize("shape", [(40, 500), (300, 100), (224, 224), (1000, 700)])
def test_preprocess_centre_crops_any_shape_to_the_network_input(shape: tuple[int, int]):
    rgb = np.random.default_rng(0).random((*shape, 3)).astype(np.float32)
    x = preprocess(rgb)
    assert x.shape == (3, SIZE, SIZE) and x.dtype == torch.float32
    assert -1.0 <= float(x.min()) < -0.5 and 0.5 < float(x.max()) <= 1.0  # 0..1 mapped onto -1..1


def test_classifier_names_imagenet_photos(classifier: Classifier):
    """Tench (0), gas pump (571) and golf ball (574) photos from train/'s Imagenette part: a classifier loaded
    wrongly (weights, channel order or input range) gets almost none right."""
    truth, photos = [], []
    for wnid, label in (("n01440764", 0), ("n03425413", 571), ("n03445777", 574)):
        for p in pick(TRAIN, 3, f"imagenette_{wnid}_*"):
            photos.append(read_image(p).rgb)
            truth.append(label)
    got = classifier.top1(photos)
    assert sum(g == t for g, t in zip(got, truth)) >= 7, got
    assert classifier.top1([]) == []
