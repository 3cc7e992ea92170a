"""The proxy trainer: it learns real data, repeats itself exactly, stops on request,
and refuses bad input with one clear line. Also the batched augmentation ops."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nasbench.errors import UserError
from nasbench.proxy.augment import BatchAugmenter, choose_policy, pad_crop_flip, random_resized_crop_flip
from nasbench.proxy.data import load_data, make_synthetic
from nasbench.proxy.train import EvalPlan, Recipe, eval_steps, lr_at, stratified_subset, train_proxy

SHARED_DATA = (Path(__file__).parents[2] / ".." / "shared" / "data").resolve()
CIFAR_SMALL = SHARED_DATA / "cifar10-small"
CHANCE_PCT = 10.0
MARGIN_PCT = 10.0  # the trained model must reach at least chance + 10 points


def tiny_cnn(num_classes: int = 10, width: int = 32) -> nn.Module:
    """Three conv-BN-ReLU layers and a linear head: trains fast on 2 CPU cores."""
    layers: list[nn.Module] = []
    channels = 3
    for i, out in enumerate((width, 2 * width, 4 * width)):
        layers += [nn.Conv2d(channels, out, 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                   nn.BatchNorm2d(out), nn.ReLU()]
        channels = out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1),
                         nn.Linear(channels, num_classes))


def seeded(model_fn, seed: int = 0, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    return model_fn(**kwargs)


@pytest.fixture(scope="module")
def cifar_small():
    if not CIFAR_SMALL.is_dir():
        pytest.skip(f"real test images not found at {CIFAR_SMALL} (shared/ beside the repo)")
    return load_data(CIFAR_SMALL)


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic(seed=0, imgsz=16, n_train=256, n_val=64)


def test_trains_on_real_data_and_beats_chance(cifar_small) -> None:
    result = train_proxy(seeded(tiny_cnn), cifar_small, Recipe(steps=60, batch=64), EvalPlan(evals=3), device="cpu",
                         seed=0)
    assert result.top1 >= CHANCE_PCT + MARGIN_PCT, f"top-1 {result.top1:.1f}% is not clearly above chance"
    assert result.curve[-1].val_loss < result.curve[0].val_loss < math.log(10) + 0.2
    assert result.steps_done == 60 and [p.step for p in result.curve] == [20, 40, 60]
    assert result.images_per_s > 0 and result.wall_s >= result.train_s > 0
    assert not result.synthetic and result.data.kind == "imagefolder"
    assert result.data.n_train == 5000 and result.device.startswith("cpu")
    assert result.top1 <= result.top5 <= 100


def test_same_seed_gives_identical_numbers(cifar_small) -> None:
    def run(seed: int):
        recipe = Recipe(steps=12, batch=32, mixup=0.4, cutmix=1.0, ema=0.99)  # every random draw is on the path
        r = train_proxy(seeded(tiny_cnn, seed), cifar_small, recipe, EvalPlan(evals=2), device="cpu", seed=seed)
        return r.top1, r.top5, r.val_loss, r.curve_rows()

    first, again, other = run(1), run(1), run(2)
    strip = lambda rows: [{k: v for k, v in row.items() if k != "elapsed_s"} for row in rows]  # noqa: E731
    assert first[:3] == again[:3] and strip(first[3]) == strip(again[3])
    assert strip(first[3]) != strip(other[3])


def test_callback_stops_early(synthetic) -> None:
    seen: list[tuple[int, float]] = []

    def prune(step: int, top1: float) -> bool:
        seen.append((step, top1))
        return step >= 4

    result = train_proxy(seeded(tiny_cnn, num_classes=20, width=8), synthetic, Recipe(steps=20, batch=16),
                         EvalPlan(evals=5), device="cpu", callback=prune)
    assert [s for s, _ in seen] == [4] and result.stopped_early and result.steps_done == 4
    assert len(result.curve) == 1 and result.synthetic


def test_callback_not_called_for_the_final_evaluation(synthetic) -> None:
    calls: list[int] = []
    train_proxy(seeded(tiny_cnn, num_classes=20, width=8), synthetic, Recipe(steps=6, batch=16), EvalPlan(evals=3),
                device="cpu", callback=lambda step, top1: calls.append(step) or False)
    assert calls == [2, 4]


def test_epochs_and_other_sizes(synthetic) -> None:
    result = train_proxy(seeded(tiny_cnn, num_classes=20, width=8), synthetic,
                         Recipe(epochs=1, batch=64, augment="rrc", amp="bf16"), EvalPlan(evals=1), device="cpu",
                         imgsz=24)
    assert result.steps == 256 // 64 and result.imgsz == 24 and result.amp == "bf16"
    assert "random-resized-crop" in result.augment and math.isfinite(result.val_loss)


def test_schedule_and_eval_steps() -> None:
    assert lr_at(1, 100, 1.0, 10) == pytest.approx(0.1)
    assert lr_at(10, 100, 1.0, 10) == pytest.approx(1.0)
    assert lr_at(100, 100, 1.0, 10) == pytest.approx(0.01)
    assert eval_steps(10, 3) == [3, 7, 10] and eval_steps(2, 5) == [1, 2]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "--steps must be at least 1"),
        ({"batch": 10_000}, "--batch 10000 is larger than the training set (256 images)"),
        ({"steps": 5, "epochs": 1}, "either --steps or --epochs"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"amp": "fp16"}, "--amp fp16 needs a GPU"),
        ({"augment": "cutout"}, "unknown augment 'cutout'"),
        ({"lr": 0}, "--lr must be positive"),
        ({"probe_val": 0}, "probe_val must be at least 1 image"),
    ],
)
def test_bad_arguments_raise_one_line(synthetic, kwargs, message) -> None:
    device = kwargs.pop("device", "cpu")
    evaluation = EvalPlan(**{k: kwargs.pop(k) for k in ("probe_val",) if k in kwargs})
    recipe = Recipe(**{"steps": 2, "batch": 8, **kwargs})
    with pytest.raises(UserError) as exc:
        train_proxy(tiny_cnn(20, 8), synthetic, recipe, evaluation, device=device)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_model_with_wrong_class_count_is_named(synthetic) -> None:
    with pytest.raises(UserError, match=r"returned \[8, 1000\].*expected \[8, 20\]"):
        train_proxy(tiny_cnn(1000, 8), synthetic, Recipe(steps=2, batch=8), device="cpu")


def test_cuda_request_without_gpu_is_a_user_error(synthetic) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(UserError, match="no CUDA GPU"):
        train_proxy(tiny_cnn(20, 8), synthetic, Recipe(steps=2, batch=8), device="cuda")


# ---------------------------------------------------------------- augmentation ops


def test_pad_crop_without_shift_is_identity_or_mirror() -> None:
    x = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    same = pad_crop_flip(x, pad=0, flip=False, gen=gen)
    assert torch.equal(same, x)
    flipped = pad_crop_flip(x, pad=0, flip=True, gen=gen)
    mirrored = [torch.equal(f, i.flip(-1)) for f, i in zip(flipped, x)]
    assert all(torch.equal(f, i) or m for f, i, m in zip(flipped, x, mirrored)) and 0 < sum(mirrored) < 16


def test_pad_crop_shifts_with_reflection() -> None:
    x = torch.arange(8, dtype=torch.uint8).repeat(4, 3, 8, 1)  # column index as value
    out = pad_crop_flip(x, pad=2, flip=False, gen=torch.Generator().manual_seed(1))
    assert out.dtype == torch.uint8 and out.shape == x.shape
    for img in out:  # each row is the column ramp shifted by -2..2, reflected at the border
        row = img[0, 0].tolist()
        shift = row[3] - 3
        assert row == [abs(c + shift) if c + shift < 8 else 14 - (c + shift) for c in range(8)]


def test_pad_crop_matches_reflect_pad_then_crop_per_image() -> None:
    """Each output is one (shift, flip) of its own input, as numpy's reflect pad + crop gives it."""
    pad, h, w = 3, 6, 9  # not square: rows and columns must not be mixed up
    x = torch.randint(0, 256, (24, 3, h, w), dtype=torch.uint8)
    out = pad_crop_flip(x, pad=pad, flip=True, gen=torch.Generator().manual_seed(2))
    assert out.shape == x.shape and out.dtype == torch.uint8
    found = []
    for img, src in zip(out.numpy(), x.numpy()):
        padded = np.pad(src, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
        matches = [(dy, dx, mirror) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1) for mirror in (0, 1)
                   if np.array_equal(img[..., ::-1] if mirror else img, padded[:, dy : dy + h, dx : dx + w])]
        assert matches, "output is not a reflect-padded crop of its input"
        found.append(matches[0])
    assert len({m[:2] for m in found}) > 5 and 0 < sum(m[2] for m in found) < len(found)


def test_full_crop_is_identity() -> None:
    x = torch.randint(0, 256, (4, 3, 12, 12), dtype=torch.uint8)
    out = random_resized_crop_flip(x, 12, (1.0, 1.0), (1.0, 1.0), False, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x.float(), atol=1e-3, rtol=0)


def test_mixing_keeps_targets_distributions() -> None:
    aug = BatchAugmenter(choose_policy("none", 8), mean=(0.5,) * 3, std=(0.25,) * 3, num_classes=5,
                         device=torch.device("cpu"), seed=0, label_smoothing=0.1, mixup=1.0, cutmix=1.0)
    x = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    for _ in range(6):  # both Mixup and CutMix batches
        inputs, targets = aug.train_batch(x, y)
        assert inputs.shape == (6, 3, 8, 8) and targets.shape == (6, 5)
        torch.testing.assert_close(targets.sum(1), torch.ones(6))
        assert targets.min() >= 0.1 / 5 - 1e-6
    plain = BatchAugmenter(choose_policy("none", 8), mean=(0.5,) * 3, std=(0.25,) * 3, num_classes=5,
                           device=torch.device("cpu"), seed=0)
    inputs, targets = plain.train_batch(x, y)
    expected = (x.float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(inputs, expected, atol=1e-5, rtol=0)
    assert torch.equal(targets.argmax(1), y) and np.isclose(targets.max().item(), 1.0)


def test_reports_model_flops_per_second_from_a_hand_count(synthetic) -> None:
    classes = synthetic.num_classes
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))
    result = train_proxy(model, synthetic, Recipe(steps=4, batch=32), EvalPlan(evals=1), device="cpu", seed=0)
    forward_macs = 16 * 16 * 8 * (3 * 3 * 3) + 8 * classes  # the 3x3 conv at 16 px, then the head
    assert result.train_flops_per_image == 3 * 2 * forward_macs  # forward + backward = 3 x forward
    assert result.model_gflops_per_s == pytest.approx(result.train_flops_per_image * result.images_per_s / 1e9)
    assert result.to_dict()["model_gflops_per_s"] == result.model_gflops_per_s


def test_probe_subset_takes_the_classes_in_turn() -> None:
    labels = torch.tensor([2, 0, 0, 1, 0, 1, 2])
    # first of each class (1, 3, 0), then the second of each (2, 5, 6), then class 0's third
    assert stratified_subset(labels, 4, 3).tolist() == [0, 1, 2, 3]
    assert stratified_subset(labels, 6, 3).tolist() == [0, 1, 2, 3, 5, 6]
    assert stratified_subset(labels, 3, 3).tolist() == [0, 1, 3]
    assert stratified_subset(labels, 99, 3).tolist() == list(range(7))


def test_probe_scores_intermediate_points_only_and_changes_no_training(synthetic) -> None:
    def run(probe_val):
        return train_proxy(seeded(tiny_cnn, num_classes=20, width=8), synthetic, Recipe(steps=12, batch=16),
                           EvalPlan(evals=3, probe_val=probe_val), device="cpu")

    whole, probed = run(None), run(40)
    assert [p.val_images for p in whole.curve] == [64, 64, 64]
    assert [p.val_images for p in probed.curve] == [40, 40, 64]
    # evaluation touches no weights or random draws: same training, same final score
    assert [p.train_loss for p in probed.curve] == [p.train_loss for p in whole.curve]
    assert (probed.top1, probed.top5, probed.val_loss) == (whole.top1, whole.top5, whole.val_loss)


def test_early_stop_on_a_probe_score_ends_on_the_whole_val_set(synthetic) -> None:
    def run(probe_val):
        return train_proxy(seeded(tiny_cnn, num_classes=20, width=8), synthetic, Recipe(steps=12, batch=16),
                           EvalPlan(evals=3, probe_val=probe_val), device="cpu", callback=lambda step, top1: True)

    whole, probed = run(None), run(40)
    assert probed.stopped_early and probed.steps_done == 4 and probed.curve[-1].val_images == 64
    assert (probed.top1, probed.val_loss) == (whole.top1, whole.val_loss)
