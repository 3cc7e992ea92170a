"""Data sources of the proxy trainer: synthetic task, ImageFolder, CIFAR pickles, bad input."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nasbench.errors import UserError
from nasbench.proxy.data import MAX_UNREADABLE_FRACTION, load_data, make_synthetic

SHARED_DATA = (Path(__file__).parents[2] / ".." / "shared" / "data").resolve()
CIFAR_SMALL = SHARED_DATA / "cifar10-small"
needs_cifar_small = pytest.mark.skipif(
    not CIFAR_SMALL.is_dir(), reason=f"real test images not found at {CIFAR_SMALL} (shared/ beside the repo)"
)


def small_imagefolder(root: Path, train_per_class: int = 3, val_per_class: int = 2, classes: int = 10) -> Path:
    """Copy the first few cifar10-small JPEGs of each class into ``root`` (same layout)."""
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for class_dir in sorted((CIFAR_SMALL / split).iterdir())[:classes]:
            target = root / split / class_dir.name
            target.mkdir(parents=True)
            for src in sorted(class_dir.iterdir())[:count]:
                shutil.copy(src, target / src.name)
    return root


def flat_tree(root: Path, per_class: int, classes: int = 3) -> Path:
    """A single ``<class>/*.jpg`` tree (no train/val folders)."""
    for class_dir in sorted((CIFAR_SMALL / "train").iterdir())[:classes]:
        (root / class_dir.name).mkdir(parents=True)
        for src in sorted(class_dir.iterdir())[:per_class]:
            shutil.copy(src, root / class_dir.name / src.name)
    return root


# ---------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic_labelled_and_has_enough_classes() -> None:
    a = make_synthetic(seed=3, imgsz=24, n_train=120, n_val=40)
    b = make_synthetic(seed=3, imgsz=24, n_train=120, n_val=40)
    c = make_synthetic(seed=4, imgsz=24, n_train=120, n_val=40)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.val_y, b.val_y)
    assert not torch.equal(a.train_x, c.train_x)
    assert a.train_x.shape == (120, 3, 24, 24) and a.train_x.dtype == torch.uint8
    assert a.num_classes >= 10
    # every class is a (texture, layout) combination: both cues are needed to name it
    textures = {name.split(" / ")[0] for name in a.info.classes}
    layouts = {name.split(" / ")[1] for name in a.info.classes}
    assert len(textures) * len(layouts) == a.num_classes
    assert a.info.synthetic and "SYNTHETIC" in a.info.label and "SYNTHETIC" in a.info.describe()
    counts = torch.bincount(a.train_y, minlength=a.num_classes)
    assert counts.max() - counts.min() <= 1  # balanced classes
    assert load_data(None, seed=3, synthetic_train=120, synthetic_val=40, imgsz=24).train_x.equal(a.train_x)


# ---------------------------------------------------------------- ImageFolder and CIFAR pickles


def _pickle(path: Path, obj: object) -> None:
    with path.open("wb") as fh:
        pickle.dump(obj, fh, protocol=2)  # protocol 2, bytes keys: like the original files


def _cifar_rows(files: list[Path]) -> np.ndarray:
    """CIFAR layout: one row per image, the R plane then G then B, each 32x32 row-major."""
    return np.stack([np.asarray(Image.open(f).convert("RGB")).transpose(2, 0, 1).reshape(-1) for f in files])


@needs_cifar_small
def test_imagefolder_and_cifar_pickle_give_identical_tensors(tmp_path: Path) -> None:
    folder = small_imagefolder(tmp_path / "folder")
    classes = sorted(d.name for d in (folder / "train").iterdir())
    batches = tmp_path / "cifar-10-batches-py"
    batches.mkdir()
    split_files = {}
    for split in ("train", "val"):
        files, labels = [], []
        for label, name in enumerate(classes):
            found = sorted((folder / split / name).iterdir())
            files += found
            labels += [label] * len(found)
        split_files[split] = (files, labels)
    train_files, train_labels = split_files["train"]
    rows = _cifar_rows(train_files)
    # two training batches, to check they are concatenated in numeric order
    _pickle(batches / "data_batch_1", {b"data": rows[:17], b"labels": train_labels[:17], b"batch_label": b"1"})
    _pickle(batches / "data_batch_2", {b"data": rows[17:], b"labels": train_labels[17:]})
    val_files, val_labels = split_files["val"]
    _pickle(batches / "test_batch", {b"data": _cifar_rows(val_files), b"labels": val_labels})
    _pickle(batches / "batches.meta", {b"label_names": [c.encode() for c in classes], b"num_vis": 3072})

    from_folder = load_data(folder)
    from_pickle = load_data(tmp_path)  # the folder holding cifar-10-batches-py is found too
    assert from_folder.info.kind == "imagefolder" and from_pickle.info.kind == "cifar10"
    assert from_folder.info.classes == from_pickle.info.classes == tuple(classes)
    for name in ("train_x", "train_y", "val_x", "val_y"):
        assert torch.equal(getattr(from_folder, name), getattr(from_pickle, name)), name
    assert from_folder.train_x.shape == (30, 3, 32, 32)
    assert from_folder.info.mean == from_pickle.info.mean and from_folder.info.std == from_pickle.info.std
    assert not from_pickle.info.synthetic


def test_cifar100_layout_is_read(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (6, 3072), dtype=np.uint8)
    _pickle(tmp_path / "train", {b"data": data, b"fine_labels": [0, 1, 2, 0, 1, 2], b"coarse_labels": [0] * 6})
    _pickle(tmp_path / "test", {b"data": data[:3], b"fine_labels": [2, 1, 0]})
    _pickle(tmp_path / "meta", {b"fine_label_names": [b"apple", b"bee", b"cup"]})
    loaded = load_data(tmp_path, imgsz=40)
    assert loaded.info.kind == "cifar100" and loaded.info.classes == ("apple", "bee", "cup")
    assert loaded.train_x.shape == (6, 3, 40, 40) and loaded.val_y.tolist() == [2, 1, 0]


def test_hostile_pickle_is_refused_without_running_code(tmp_path: Path) -> None:
    class RunsCode:
        def __reduce__(self):  # unpickling would call shutil.rmtree(tmp_path / "victim")
            return (shutil.rmtree, (str(tmp_path / "victim"),))

    (tmp_path / "victim").mkdir()
    _pickle(tmp_path / "batches.meta", {b"label_names": [b"a"]})
    _pickle(tmp_path / "data_batch_1", {b"data": RunsCode(), b"labels": [0]})
    _pickle(tmp_path / "test_batch", {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]})
    with pytest.raises(UserError, match="refusing to load shutil.rmtree"):
        load_data(tmp_path)
    assert (tmp_path / "victim").is_dir()


@needs_cifar_small
def test_single_tree_split_is_deterministic_and_seed_independent(tmp_path: Path) -> None:
    root = flat_tree(tmp_path, per_class=20)
    a = load_data(root, val_split=0.25, seed=0)
    b = load_data(root, val_split=0.25, seed=99)
    assert torch.equal(a.val_x, b.val_x) and torch.equal(a.train_y, b.train_y)
    assert a.info.n_val == 3 * 5 and a.info.n_train == 3 * 15
    assert torch.bincount(a.val_y).tolist() == [5, 5, 5]
    assert "val_split=0.25" in a.info.split


@needs_cifar_small
def test_imgsz_resizes_at_decode(tmp_path: Path) -> None:
    data = load_data(small_imagefolder(tmp_path, 2, 1, classes=2), imgsz=48)
    assert data.train_x.shape == (4, 3, 48, 48) and data.info.imgsz == 48


# ---------------------------------------------------------------- bad input: one clear line each


def _one_line(exc: pytest.ExceptionInfo[UserError]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_missing_and_empty_directories(tmp_path: Path) -> None:
    with pytest.raises(UserError) as exc:
        load_data(tmp_path / "nope")
    assert "not found" in _one_line(exc) and "nope" in str(exc.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError) as exc:
        load_data(tmp_path / "empty")
    assert "empty" in _one_line(exc)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UserError, match="must be a directory"):
        load_data(tmp_path / "file.txt")


def test_no_class_folders(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"not really")
    with pytest.raises(UserError) as exc:
        load_data(tmp_path)
    assert "no class folders" in _one_line(exc)


@needs_cifar_small
def test_train_val_class_sets_differ(tmp_path: Path) -> None:
    root = small_imagefolder(tmp_path, 2, 1, classes=3)
    shutil.rmtree(root / "val" / "bird")
    (root / "val" / "zebra").mkdir()
    shutil.copy(next((root / "val" / "airplane").iterdir()), root / "val" / "zebra" / "z.jpg")
    with pytest.raises(UserError) as exc:
        load_data(root)
    msg = _one_line(exc)
    assert "differ" in msg and "bird" in msg and "zebra" in msg


@needs_cifar_small
def test_train_without_val_and_empty_class(tmp_path: Path) -> None:
    root = small_imagefolder(tmp_path / "a", 2, 1, classes=2)
    shutil.rmtree(root / "val")
    with pytest.raises(UserError, match="not both train/ and val/"):
        load_data(root)
    flat = flat_tree(tmp_path / "b", per_class=2, classes=2)
    (flat / "empty_class").mkdir()
    with pytest.raises(UserError, match="without images.*empty_class"):
        load_data(flat)


@needs_cifar_small
def test_few_unreadable_images_are_skipped_and_counted(tmp_path: Path) -> None:
    root = flat_tree(tmp_path, per_class=60, classes=2)  # 120 files: 1 bad = 0.8% <= 1%
    (root / "airplane" / "broken.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    data = load_data(root)
    assert data.info.n_train + data.info.n_val == 120
    assert len(data.info.skipped) == 1 and data.info.skipped[0].endswith("broken.jpg")
    assert "skipped 1 unreadable" in data.info.describe()


@needs_cifar_small
def test_many_unreadable_images_raise_with_the_list(tmp_path: Path) -> None:
    root = flat_tree(tmp_path, per_class=20, classes=2)
    for i in range(3):  # 3 of 43 files, far above 1%
        (root / "airplane" / f"bad{i}.png").write_bytes(b"garbage")
    assert 3 / 43 > MAX_UNREADABLE_FRACTION
    with pytest.raises(UserError) as exc:
        load_data(root)
    msg = _one_line(exc)
    assert "3 of 43 images are unreadable" in msg and "bad0.png" in msg and "bad2.png" in msg


def test_bad_cifar_pickle(tmp_path: Path) -> None:
    _pickle(tmp_path / "batches.meta", {b"label_names": [b"a", b"b"]})
    _pickle(tmp_path / "data_batch_1", {b"labels": [0]})
    _pickle(tmp_path / "test_batch", {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]})
    with pytest.raises(UserError, match="lacks 'labels' or 'data'"):
        load_data(tmp_path)


@needs_cifar_small
def test_a_decompression_bomb_is_skipped_not_decoded(tmp_path: Path, monkeypatch) -> None:
    """An image of more than twice Pillow's pixel cap (a 20000 x 20000 PNG at the default cap)
    is skipped like an unreadable file, not a DecompressionBombError traceback."""
    root = flat_tree(tmp_path, per_class=60, classes=2)  # 32 x 32 images: 1,024 px each
    Image.new("RGB", (100, 100), (9, 9, 9)).save(root / "airplane" / "huge.png")  # 10,000 px
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2_000)  # a bomb = more than 4,000 px here
    data = load_data(root, imgsz=32)
    assert data.info.n_train + data.info.n_val == 120
    assert len(data.info.skipped) == 1 and data.info.skipped[0].endswith("huge.png")


def test_training_side_is_capped_before_decoding() -> None:
    with pytest.raises(UserError, match="--imgsz must be at most 1024 px for proxy training, got 100000"):
        load_data(None, imgsz=100_000)
