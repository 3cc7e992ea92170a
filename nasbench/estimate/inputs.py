"""The images zero-cost scores are computed on: built in, deterministic, no files.

Zero-cost scores of different models are only comparable on the same inputs, and the
fitted estimators were fitted on scores of these very inputs, so the estimator always
uses them (a user's ``--data`` is for proxy training, not for this).

``natural`` images are random fields with the 1/f amplitude spectrum of natural photos
(each channel and image its own draw, a shared random colour cast); ``synthetic`` are the
proxy task's texture-and-layout images. In an exploratory run over the 31 published
presets (not part of the benchmark), scores on 1/f fields and on real CIFAR-10 images
upsampled to the native size ordered the presets alike (ZiCo tau 0.48 vs 0.47, 30/35
matched pairs each; grad-norm 0.30 vs 0.39), and the product cannot ship real images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nasbench.estimate.zerocost import ScoreBatch
from nasbench.proxy.data import synthetic_images

# ImageNet channel statistics: the normalisation every model of the zoo was trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_KINDS = ("natural", "synthetic")


def natural_images(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """uint8 [n, 3, size, size] random fields with a 1/f amplitude spectrum."""
    fy = torch.fft.fftfreq(size).view(-1, 1)
    fx = torch.fft.rfftfreq(size).view(1, -1)
    radius = torch.sqrt(fx**2 + fy**2)
    radius[0, 0] = 1.0  # the mean is set below, not by the spectrum
    real = torch.randn(n, 3, size, size // 2 + 1, generator=gen)
    imag = torch.randn(n, 3, size, size // 2 + 1, generator=gen)
    field = torch.fft.irfft2(torch.complex(real, imag) / radius, s=(size, size))
    field = (field - field.mean(dim=(2, 3), keepdim=True)) / field.std(dim=(2, 3), keepdim=True).clamp_min(1e-12)
    cast = 0.5 + 0.1 * torch.randn(n, 3, 1, 1, generator=gen)
    return ((cast + 0.2 * field).clamp(0, 1) * 255).round().to(torch.uint8)


def normalise(images_u8: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images_u8.float() / 255 - mean) / std


def score_batches(imgsz: int, *, batches: int = 2, batch: int = 8, num_classes: int = 1000, seed: int = 0,
                  kind: str = "natural", device: torch.device | str = "cpu") -> list[ScoreBatch]:
    """``batches`` batches of ``batch`` normalised images at ``imgsz`` px with random labels.

    The same arguments give the same tensors on every machine (CPU generators).
    """
    if kind not in INPUT_KINDS:
        raise ValueError(f"unknown input kind {kind!r} (use {', '.join(INPUT_KINDS)})")
    out = []
    for b in range(batches):
        gen = torch.Generator().manual_seed(1000 * seed + b)
        if kind == "natural":
            images = natural_images(batch, imgsz, gen)
        else:
            images = synthetic_images(batch, imgsz, gen)[0]
        labels = torch.randint(0, num_classes, (batch,), generator=gen)
        out.append(ScoreBatch(normalise(images).to(device), labels.to(device)))
    return out


def resized(images: torch.Tensor, imgsz: int) -> torch.Tensor:
    """Bilinear resize of a float batch (used to score real images at a model's native size)."""
    return F.interpolate(images, size=(imgsz, imgsz), mode="bilinear", align_corners=False)
