"""Proxy-training data: every source decoded once into resident uint8 tensors.

A proxy run is short (hundreds of steps), so re-decoding JPEGs every epoch would cost
more than the training itself. Each source is decoded exactly once into
``uint8 [N, 3, S, S]`` tensors (S = ``imgsz``) that live on the training device; all
augmentation then happens there with batched tensor ops (see ``augment.py``).

Sources (``load_data(source)``):
- ``None`` or ``"synthetic"``: a generated texture x layout task, deterministic from the
  seed (no files needed). Every output built from it is labelled "synthetic".
- an ImageFolder directory: ``train/<class>/*`` + ``val/<class>/*``, or a single
  ``<class>/*`` tree split deterministically by ``val_split`` (a hash of each file's
  path decides, so the split does not depend on the training seed).
- a CIFAR python-pickle directory: ``cifar-10-batches-py`` (``data_batch_1..5``,
  ``test_batch``, ``batches.meta``) or ``cifar-100-python`` (``train``, ``test``, ``meta``),
  or a folder holding one of them. Pickles are read with an unpickler that only admits
  the numpy array types these files contain, so a hostile file cannot run code.

Images are decoded with Pillow and numpy only: converted to RGB, the shorter side
resized to S (bilinear) and centre-cropped to S x S. Both loaders share that code, so
the same pixels give the same tensors whichever format they came in.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from nasbench.errors import UserError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
# Unreadable images are skipped (and counted) up to this fraction; above it the data
# set is more likely broken than slightly dirty, so we refuse it.
MAX_UNREADABLE_FRACTION = 0.01
# Default stored side for ImageFolder data when imgsz is not given: the first image's
# shorter side, capped so a folder of photos does not silently fill the memory.
DEFAULT_IMGSZ_CAP = 128
# Proxy training stores every image decoded at this side: 1024 px is already 3 MB per image.
MAX_IMGSZ = 1024
# What Pillow raises for a file it cannot decode. DecompressionBombError: more than twice
# Image.MAX_IMAGE_PIXELS (a 20000 x 20000 PNG would decode to 1.2 GB); such a file is
# skipped like any unreadable one.
UNREADABLE = (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)
# Images at most this many pixels are decoded serially (measured: 32x32 JPEGs decode at
# 0.12 ms each serially and 0.19 ms with 2-4 threads on a 2-core machine).
PARALLEL_DECODE_MIN_PIXELS = 128 * 128
SYNTHETIC_IMGSZ = 32
CIFAR_IMGSZ = 32

SYNTHETIC_TEXTURES = ("horizontal stripes", "vertical stripes", "diagonal stripes", "checkerboard", "dots")
SYNTHETIC_LAYOUTS = ("top half", "bottom half", "centre disc", "outer ring")


@dataclass(frozen=True)
class DataInfo:
    """What the tensors hold and where they came from; shown in every output."""

    source: str  # what the user passed ("synthetic" for the generated task)
    kind: str  # "synthetic" | "imagefolder" | "cifar10" | "cifar100"
    synthetic: bool
    classes: tuple[str, ...]
    n_train: int
    n_val: int
    imgsz: int  # stored side length, px
    mean: tuple[float, float, float]  # per-channel mean of the training set, 0..1 units
    std: tuple[float, float, float]  # per-channel std of the training set, 0..1 units
    split: str  # how train and val were separated
    skipped: tuple[str, ...] = ()  # unreadable image files that were left out
    seed: int | None = None  # generator seed (synthetic data only)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def label(self) -> str:
        """One line naming the data; synthetic data says so in capitals."""
        if self.synthetic:
            return f"SYNTHETIC texture x layout task (seed {self.seed}, {self.num_classes} classes)"
        return f"{self.kind} {self.source} ({self.num_classes} classes)"

    def describe(self) -> str:
        mean = ", ".join(f"{m:.3f}" for m in self.mean)
        std = ", ".join(f"{s:.3f}" for s in self.std)
        text = (
            f"{self.label}: {self.n_train} train / {self.n_val} val images at "
            f"{self.imgsz}x{self.imgsz} px, split: {self.split}; mean=({mean}) std=({std})"
        )
        if self.skipped:
            text += f"; skipped {len(self.skipped)} unreadable image(s)"
        return text

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["num_classes"] = self.num_classes
        for key in ("classes", "mean", "std", "skipped"):
            out[key] = list(out[key])
        return out


@dataclass(frozen=True, eq=False)
class ProxyData:
    """Decoded train/val sets, resident as uint8 tensors on one device."""

    train_x: torch.Tensor  # uint8 [N, 3, S, S]
    train_y: torch.Tensor  # int64 [N]
    val_x: torch.Tensor  # uint8 [M, 3, S, S]
    val_y: torch.Tensor  # int64 [M]
    info: DataInfo

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.train_x, self.train_y, self.val_x, self.val_y))

    def to(self, device: torch.device | str) -> ProxyData:
        """The same data on ``device`` (no copy if it is already there)."""
        device = torch.device(device)
        if self.device == device or (device.index is None and self.device.type == device.type):
            return self
        check_fits_on(device, self.nbytes)
        moved = [t.to(device, non_blocking=False) for t in (self.train_x, self.train_y, self.val_x, self.val_y)]
        return ProxyData(*moved, info=self.info)


def real_data_info(source: str, kind: str, classes: Sequence[str], train_x: torch.Tensor, val_x: torch.Tensor,
                   split: str, skipped: Sequence[Path] = ()) -> DataInfo:
    """DataInfo of a decoded real data set; the normalisation statistics come from train_x."""
    mean, std = channel_stats(train_x)
    return DataInfo(source=source, kind=kind, synthetic=False, classes=tuple(classes), n_train=train_x.shape[0],
                    n_val=val_x.shape[0], imgsz=train_x.shape[-1], mean=mean, std=std, split=split,
                    skipped=tuple(str(p) for p in skipped))


def check_fits_on(device: torch.device, nbytes: int) -> None:
    """Refuse, with the numbers, a data set that would not fit in the device memory."""
    if device.type != "cuda":
        return  # host memory: the decode itself would already have failed
    free, _total = torch.cuda.mem_get_info(device)
    if nbytes > 0.6 * free:
        raise UserError(
            f"the decoded data needs {nbytes / 2**30:.1f} GiB but {device} has {free / 2**30:.1f} GiB free; "
            "use a smaller --imgsz or a smaller data set"
        )


# ---------------------------------------------------------------- entry point


def load_data(
    source: str | os.PathLike[str] | None = None,
    *,
    imgsz: int | None = None,
    seed: int = 0,
    val_split: float = 0.1,
    synthetic_train: int = 8000,
    synthetic_val: int = 2000,
    workers: int | None = None,
) -> ProxyData:
    """Decode ``source`` into a ``ProxyData`` on the CPU (move it with ``.to(device)``).

    ``imgsz`` is the stored side in px; by default 32 for synthetic and CIFAR data and the
    first training image's shorter side (at most 128) for image folders. ``seed`` only
    matters for synthetic data; ``val_split`` only for a single ``<class>/`` tree.
    """
    if imgsz is not None and imgsz < 8:
        raise UserError(f"--imgsz must be at least 8 px, got {imgsz}")
    if imgsz is not None and imgsz > MAX_IMGSZ:  # before any image is decoded at that size
        raise UserError(f"--imgsz must be at most {MAX_IMGSZ} px for proxy training, got {imgsz}")
    if source is None or str(source) == "synthetic":
        return make_synthetic(
            seed=seed, imgsz=imgsz or SYNTHETIC_IMGSZ, n_train=synthetic_train, n_val=synthetic_val
        )
    root = Path(source).expanduser()
    if not root.exists():
        raise UserError(f"data directory not found: {root} (pass an ImageFolder or CIFAR directory, or omit --data)")
    if not root.is_dir():
        raise UserError(f"--data must be a directory, not a file: {root}")
    cifar_dir = find_cifar_dir(root)
    if cifar_dir is not None:
        return load_cifar(cifar_dir, imgsz=imgsz or CIFAR_IMGSZ, source=str(source))
    return load_imagefolder(root, imgsz=imgsz, val_split=val_split, source=str(source), workers=workers)


# ---------------------------------------------------------------- decoding


def fit_square(img: Image.Image, size: int) -> np.ndarray:
    """RGB, shorter side resized to ``size``, centre crop: uint8 array [3, size, size]."""
    img = img.convert("RGB")
    width, height = img.size
    if (width, height) != (size, size):
        scale = size / min(width, height)
        new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def decode_file(path: Path, size: int) -> np.ndarray | None:
    """One image file -> uint8 [3, size, size], or None when Pillow cannot read it."""
    try:
        with Image.open(path) as img:
            # JPEG draft mode decodes big photos at a reduced DCT scale (>= size): much
            # faster, and deterministic; a no-op for images already small.
            img.draft("RGB", (size, size))
            img.load()
            return fit_square(img, size)
    except UNREADABLE:
        return None


def decode_files(paths: Sequence[Path], size: int, workers: int | None) -> list[np.ndarray | None]:
    """Decode in order; big images in a thread pool (Pillow releases the GIL while decoding).

    Tiny images (CIFAR-sized) decode faster serially: per-file Python overhead, not the
    codec, dominates and threads only fight over the GIL.
    """
    workers = workers or min(8, os.cpu_count() or 1)
    if workers <= 1 or len(paths) < 64 or _pixels_of_first(paths) <= PARALLEL_DECODE_MIN_PIXELS:
        return [decode_file(p, size) for p in paths]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda p: decode_file(p, size), paths, chunksize=64))


def _pixels_of_first(paths: Sequence[Path]) -> int:
    try:
        with Image.open(paths[0]) as img:  # reads the header only
            return img.size[0] * img.size[1]
    except UNREADABLE:
        return 0


def channel_stats(x: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images [N, 3, H, W], in 0..1 units."""
    total = torch.zeros(3, dtype=torch.float64)
    total_sq = torch.zeros(3, dtype=torch.float64)
    for start in range(0, x.shape[0], chunk):
        part = x[start : start + chunk].to("cpu", torch.float64)
        total += part.sum(dim=(0, 2, 3))
        total_sq += (part * part).sum(dim=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    var = (total_sq / count - mean * mean).clamp_min(1e-12)
    return tuple((mean / 255).tolist()), tuple((var.sqrt() / 255).tolist())


# ---------------------------------------------------------------- image folders


@dataclass(frozen=True)
class _Listing:
    files: list[Path]
    labels: list[int]


def _class_dirs(root: Path) -> list[Path]:
    return sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
        key=lambda p: p.as_posix(),
    )


def _list_classes(root: Path, what: str) -> dict[str, list[Path]]:
    dirs = _class_dirs(root)
    if not dirs:
        if not any(root.iterdir()):
            raise UserError(f"data directory is empty: {root}")
        raise UserError(
            f"no class folders in {what} {root} (expected train/<class>/..., val/<class>/... or <class>/...)"
        )
    by_class = {d.name: _image_files(d) for d in dirs}
    empty = [name for name, files in by_class.items() if not files]
    if empty:
        raise UserError(f"class folder(s) without images in {root}: {', '.join(empty[:5])}")
    return by_class


def _hash_fraction(rel_path: str) -> float:
    """A stable pseudo-random number in [0, 1) from a file's relative path."""
    digest = hashlib.sha1(rel_path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_by_hash(by_class: dict[str, list[Path]], root: Path, val_split: float) -> tuple[_Listing, _Listing]:
    """Per class, the ceil(n * val_split) files with the smallest path hash go to val."""
    if not 0.0 < val_split < 1.0:
        raise UserError(f"--val-split must be between 0 and 1 (exclusive), got {val_split}")
    train, val = _Listing([], []), _Listing([], [])
    for label, (name, files) in enumerate(by_class.items()):
        if len(files) < 2:
            raise UserError(f"class '{name}' has {len(files)} image(s); a train/val split needs at least 2 per class")
        ranked = sorted(files, key=lambda p: (_hash_fraction(p.relative_to(root).as_posix()), p.as_posix()))
        n_val = min(len(files) - 1, math.ceil(len(files) * val_split))
        chosen_val = set(ranked[:n_val])
        for path in files:  # keep the sorted order inside each split
            part = val if path in chosen_val else train
            part.files.append(path)
            part.labels.append(label)
    return train, val


def _listing(by_class: dict[str, list[Path]]) -> _Listing:
    out = _Listing([], [])
    for label, files in enumerate(by_class.values()):
        out.files.extend(files)
        out.labels.extend([label] * len(files))
    return out


def load_imagefolder(
    root: Path, *, imgsz: int | None, val_split: float, source: str, workers: int | None = None
) -> ProxyData:
    train_dir, val_dir = root / "train", root / "val"
    if train_dir.is_dir() and val_dir.is_dir():
        train_classes = _list_classes(train_dir, "train folder")
        val_classes = _list_classes(val_dir, "val folder")
        if set(train_classes) != set(val_classes):
            only_train = sorted(set(train_classes) - set(val_classes))
            only_val = sorted(set(val_classes) - set(train_classes))
            raise UserError(
                f"train/ and val/ class folders differ in {root}: only in train: {only_train[:5] or 'none'}, "
                f"only in val: {only_val[:5] or 'none'}"
            )
        classes = tuple(train_classes)
        val_classes = {name: val_classes[name] for name in classes}
        train, val = _listing(train_classes), _listing(val_classes)
        split = "train/ and val/ folders"
    elif train_dir.is_dir() or val_dir.is_dir():
        present = "train/" if train_dir.is_dir() else "val/"
        raise UserError(
            f"{root} has {present} but not both train/ and val/; add the other one, or point --data at "
            "a single <class>/ tree to split it with --val-split"
        )
    else:
        by_class = _list_classes(root, "data directory")
        classes = tuple(by_class)
        train, val = split_by_hash(by_class, root, val_split)
        split = f"val_split={val_split:g} of each class, chosen by a hash of the file path"

    if imgsz is None:
        imgsz = _default_imgsz(train.files)
    train_x, train_y, bad_train = _decode_listing(train, imgsz, workers)
    val_x, val_y, bad_val = _decode_listing(val, imgsz, workers)
    skipped = bad_train + bad_val
    n_files = len(train.files) + len(val.files)
    if len(skipped) > MAX_UNREADABLE_FRACTION * n_files:
        names = ", ".join(str(p) for p in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        raise UserError(
            f"{len(skipped)} of {n_files} images are unreadable (more than "
            f"{MAX_UNREADABLE_FRACTION:.0%}): {names}"
        )
    if train_x.shape[0] == 0 or val_x.shape[0] == 0:
        raise UserError(f"no readable images in the {'train' if train_x.shape[0] == 0 else 'val'} split of {root}")
    info = real_data_info(source, "imagefolder", classes, train_x, val_x, split, skipped)
    return ProxyData(train_x, train_y, val_x, val_y, info)


def _default_imgsz(files: list[Path]) -> int:
    for path in files[:20]:  # the first readable image sets the size
        try:
            with Image.open(path) as img:
                return max(8, min(DEFAULT_IMGSZ_CAP, min(img.size)))
        except UNREADABLE:
            continue
    return DEFAULT_IMGSZ_CAP


def _decode_listing(listing: _Listing, size: int, workers: int | None) -> tuple[torch.Tensor, torch.Tensor, list[Path]]:
    arrays = decode_files(listing.files, size, workers)
    good = [i for i, a in enumerate(arrays) if a is not None]
    bad = [listing.files[i] for i, a in enumerate(arrays) if a is None]
    if good:
        x = torch.from_numpy(np.stack([arrays[i] for i in good]))
    else:
        x = torch.zeros((0, 3, size, size), dtype=torch.uint8)
    y = torch.tensor([listing.labels[i] for i in good], dtype=torch.int64)
    return x, y, bad


# ---------------------------------------------------------------- CIFAR pickles

_CIFAR100_FILES = ("meta", "train", "test")
_NUMPY_GLOBALS = frozenset({"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"})


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Admits only the numpy globals CIFAR pickles use: loading cannot run other code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):  # how protocol-2 pickles store bytes
            return super().find_class(module, name)
        if module == "numpy" or module.startswith(("numpy.core", "numpy._core")):
            if name in _NUMPY_GLOBALS:
                if module.startswith("numpy.core") and hasattr(np, "_core"):
                    module = "numpy._core" + module[len("numpy.core") :]  # numpy 2 moved it
                return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR pickle")


def read_cifar_pickle(path: Path) -> dict[str, Any]:
    """One CIFAR pickle as a dict with str keys (the originals use bytes keys)."""
    try:
        with path.open("rb") as fh:
            raw = _ArrayOnlyUnpickler(fh, encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise UserError(f"cannot read CIFAR pickle {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise UserError(f"CIFAR pickle {path} holds a {type(raw).__name__}, not a dict")
    return {k.decode() if isinstance(k, bytes) else str(k): v for k, v in raw.items()}


def find_cifar_dir(root: Path) -> Path | None:
    """``root`` itself or its one ``cifar-*`` child when it holds CIFAR pickles."""
    candidates = [root, *sorted(d for d in root.iterdir() if d.is_dir() and d.name.startswith("cifar-"))]
    for folder in candidates:
        if _cifar_kind(folder) is not None:
            return folder
    return None


def _cifar_kind(folder: Path) -> str | None:
    if (folder / "batches.meta").is_file() and any(folder.glob("data_batch_*")):
        return "cifar10"
    if all((folder / name).is_file() for name in _CIFAR100_FILES):
        return "cifar100"
    return None


def _names(values: Sequence[Any]) -> tuple[str, ...]:
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in values)


def _cifar_arrays(batch: dict[str, Any], label_key: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    if "data" not in batch or label_key not in batch:
        raise UserError(f"CIFAR pickle {path} lacks '{label_key}' or 'data'")
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
        raise UserError(f"CIFAR pickle {path}: expected data [N, 3072] and N labels, "
                        f"got {data.shape} and {labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels


def _batch_number(path: Path) -> int:
    match = re.search(r"(\d+)$", path.name)
    return int(match.group(1)) if match else 0


def load_cifar(folder: Path, *, imgsz: int, source: str) -> ProxyData:
    kind = _cifar_kind(folder)
    if kind == "cifar10":
        meta = read_cifar_pickle(folder / "batches.meta")
        classes = _names(meta.get("label_names", []))
        train_files = sorted(folder.glob("data_batch_*"), key=_batch_number)
        val_file, label_key = folder / "test_batch", "labels"
        if not val_file.is_file():
            raise UserError(f"CIFAR-10 directory {folder} has no test_batch")
    else:
        meta = read_cifar_pickle(folder / "meta")
        classes = _names(meta.get("fine_label_names", []))
        train_files, val_file, label_key = [folder / "train"], folder / "test", "fine_labels"
    if not classes:
        raise UserError(f"CIFAR meta file in {folder} has no class names")
    parts = [_cifar_arrays(read_cifar_pickle(p), label_key, p) for p in train_files]
    train_np = np.concatenate([p[0] for p in parts])
    train_labels = np.concatenate([p[1] for p in parts])
    val_np, val_labels = _cifar_arrays(read_cifar_pickle(val_file), label_key, val_file)
    for labels in (train_labels, val_labels):
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise UserError(f"CIFAR labels in {folder} fall outside the {len(classes)} class names")
    train_x, val_x = (torch.from_numpy(_resized(a, imgsz)) for a in (train_np, val_np))
    info = real_data_info(source, kind, classes, train_x, val_x,
                          f"{'+'.join(p.name for p in train_files)} / {val_file.name}")
    return ProxyData(train_x, torch.from_numpy(train_labels), val_x, torch.from_numpy(val_labels), info)


def _resized(images: np.ndarray, size: int) -> np.ndarray:
    """[N, 3, 32, 32] -> [N, 3, size, size] through the same code as image files."""
    if size == images.shape[-1]:
        return np.ascontiguousarray(images)
    return np.stack([fit_square(Image.fromarray(img.transpose(1, 2, 0)), size) for img in images])


# ---------------------------------------------------------------- synthetic task


def make_synthetic(*, seed: int, imgsz: int, n_train: int, n_val: int) -> ProxyData:
    """A generated classification task that needs local texture AND global layout.

    Class = (texture, layout): one region of the image (top half, bottom half, centre
    disc or outer ring; borders jittered) carries a strong texture of one of five kinds;
    the rest carries a weak texture of a different kind. Naming the class needs the
    texture kind (a local cue) and which region is the strong one (a comparison across
    the whole image), so
    neither a purely local nor a purely global model can solve it. Colours, period,
    phase, orientation jitter, a smooth background and pixel noise vary per image.
    """
    if n_train < 1 or n_val < 1:
        raise UserError("synthetic data needs at least one train and one val image")
    train_seed, val_seed = (int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(2))
    train_x, train_y = synthetic_images(n_train, imgsz, torch.Generator().manual_seed(train_seed))
    val_x, val_y = synthetic_images(n_val, imgsz, torch.Generator().manual_seed(val_seed))
    mean, std = channel_stats(train_x)
    classes = tuple(f"{t} / {layout}" for t in SYNTHETIC_TEXTURES for layout in SYNTHETIC_LAYOUTS)
    info = DataInfo(
        source="synthetic",
        kind="synthetic",
        synthetic=True,
        classes=classes,
        n_train=n_train,
        n_val=n_val,
        imgsz=imgsz,
        mean=mean,
        std=std,
        split="independently generated val set",
        seed=seed,
    )
    return ProxyData(train_x, train_y, val_x, val_y, info)


def synthetic_images(n: int, size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    n_layouts = len(SYNTHETIC_LAYOUTS)
    n_classes = len(SYNTHETIC_TEXTURES) * n_layouts
    labels = (torch.arange(n) % n_classes)[torch.randperm(n, generator=gen)]
    chunk = max(1, 2_000_000 // (size * size))  # bounds the float temporaries
    images = [
        _synthetic_chunk(labels[i : i + chunk] // n_layouts, labels[i : i + chunk] % n_layouts, size, gen)
        for i in range(0, n, chunk)
    ]
    return torch.cat(images), labels


def _uniform(shape: tuple[int, ...], low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=gen)


def _texture(kind: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """[B, S, S] texture in [-1, 1]: horizontal, vertical, diagonal stripes, checkerboard, dots."""
    b = kind.shape[0]
    base_deg = torch.tensor([90.0, 0.0, 45.0, 0.0, 0.0])[kind]
    flip_diag = (torch.rand(b, generator=gen) < 0.5) & (kind == 2)  # both diagonals count
    angle = torch.deg2rad(base_deg + 90.0 * flip_diag + _uniform((b,), -8.0, 8.0, gen))
    period = _uniform((b,), 0.10, 0.20, gen)  # fraction of the image side: size-independent
    phase = _uniform((b, 2), 0.0, 1.0, gen)
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    u = (xs * cos + ys * sin) / period[:, None, None]
    v = (-xs * sin + ys * cos) / period[:, None, None]
    wave_u = torch.sin(2 * math.pi * (u + phase[:, 0, None, None]))
    wave_v = torch.sin(2 * math.pi * (v + phase[:, 1, None, None]))
    dots = 4.0 * (wave_u + wave_v - 1.0).clamp_min(0.0) - 1.0  # bright spots on a lattice
    pattern = torch.where((kind == 3)[:, None, None], wave_u * wave_v * 2.0, wave_u)
    pattern = torch.where((kind == 4)[:, None, None], dots, pattern)
    return torch.tanh(2.5 * pattern) / math.tanh(2.5)  # squarer edges, still band-limited


def _synthetic_chunk(texture: torch.Tensor, layout: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    b = texture.shape[0]
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    ys, xs = coords[None, :, None], coords[None, None, :]
    strong = _texture(texture, xs, ys, gen)
    other_kind = (texture + torch.randint(1, len(SYNTHETIC_TEXTURES), (b,), generator=gen)) % len(SYNTHETIC_TEXTURES)
    weak = _texture(other_kind, xs, ys, gen) * _uniform((b, 1, 1), 0.4, 0.75, gen)
    # Signed distance (image-side units) into the strong region, with a jittered border;
    # a ~1.5 px soft edge avoids a hard-coded seam. Every layout is symmetric under a
    # horizontal flip, so the usual flip augmentation keeps labels true.
    vertical = ys.expand(b, size, size)
    radius = torch.sqrt((xs - 0.5) ** 2 + (ys - 0.5) ** 2).expand(b, size, size)
    half_border = _uniform((b, 1, 1), 0.4, 0.6, gen)
    disc_radius = _uniform((b, 1, 1), 0.33, 0.45, gen)  # pi * 0.4^2 ~ half the image
    inside = torch.stack(
        [half_border - vertical, vertical - half_border, disc_radius - radius, radius - disc_radius], dim=1
    )[torch.arange(b), layout]
    mask = torch.sigmoid(inside * size / 1.5)
    pattern = mask * strong + (1 - mask) * weak  # [B, S, S]

    direction = torch.randn((b, 3), generator=gen)
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-6)
    amplitude = _uniform((b, 1, 1, 1), 0.12, 0.28, gen)
    base = _uniform((b, 3, 1, 1), 0.3, 0.7, gen)
    low_res = torch.randn((b, 3, 4, 4), generator=gen) * 0.08
    background = torch.nn.functional.interpolate(low_res, size=(size, size), mode="bilinear", align_corners=False)
    noise = torch.randn((b, 3, size, size), generator=gen) * 0.08
    image = base + background + amplitude * direction[:, :, None, None] * pattern[:, None] + noise
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)

