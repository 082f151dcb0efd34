"""Real data sets, held in memory as normalized tensors, with a per-class sampler.

Distillation asks "give me n real images of class c" thousands of times, so every
split is decoded once into one float tensor [N, C, H, W] (normalized with the data
set's mean/std) plus a label tensor, and indexed by class once. Loading never
unpickles arbitrary objects: IDX and .mat files are plain arrays, and the CIFAR
python batches go through an unpickler that admits only numpy arrays.

Where data is looked for, in order: `root` (if given), the Debian package location
(FashionMNIST), `$GENPRIOR_DATA` or ~/.cache/genprior/data, and finally torchvision's
download when `download=True`. A data set found nowhere is one ConfigError that says
where it looked and how to get it.
"""
from __future__ import annotations

import functools
import gzip
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genprior.augment import ZCA
from genprior.errors import ConfigError, DataNotFound

IMAGENETTE_WNIDS = (  # fixed class lists of fast.ai's ImageNet subsets, in their canonical order
    "n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
    "n03394916", "n03417042", "n03425413", "n03445777", "n03888605",
)
IMAGEWOOF_WNIDS = (
    "n02086240", "n02087394", "n02088364", "n02089973", "n02093754",
    "n02096294", "n02099601", "n02105641", "n02111889", "n02115641",
)
CIFAR100_CLASSES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus "
    "butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch "
    "crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo "
    "keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse "
    "mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy "
    "porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper "
    "snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television "
    "tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"
).split()
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    channels: int
    resolution: int  # native resolution; load_split can resize
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip_ok: bool  # False for digits: a mirrored 2 is not a 2, so DSA drops its flip
    resolutions: tuple[int, ...] = ()  # allowed resolutions where the source has no native one
    imagenet_classes: tuple[int, ...] = ()  # ImageNet subsets: each class's ImageNet-1k index (for ImageNet models)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


DATASETS: dict[str, DatasetInfo] = {
    "fashion_mnist": DatasetInfo(
        "fashion_mnist", 1, 28,
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        (0.2861,), (0.3530,), flip_ok=True),
    "mnist": DatasetInfo("mnist", 1, 28, tuple(str(i) for i in range(10)),
                         (0.1307,), (0.3081,), flip_ok=False),
    "cifar10": DatasetInfo(
        "cifar10", 3, 32,
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), flip_ok=True),
    "cifar100": DatasetInfo("cifar100", 3, 32, tuple(CIFAR100_CLASSES),
                            (0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762), flip_ok=True),
    "svhn": DatasetInfo("svhn", 3, 32, tuple(str(i) for i in range(10)),
                        (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), flip_ok=False),
    "imagenette": DatasetInfo(
        "imagenette", 3, 128,
        ("tench", "English springer", "cassette player", "chain saw", "church",
         "French horn", "garbage truck", "gas pump", "golf ball", "parachute"),
        IMAGENET_MEAN, IMAGENET_STD, flip_ok=True, resolutions=(32, 64, 128),
        imagenet_classes=(0, 217, 482, 491, 497, 566, 569, 571, 574, 701)),
    "imagewoof": DatasetInfo(
        "imagewoof", 3, 128,
        ("Shih-Tzu", "Rhodesian ridgeback", "beagle", "English foxhound", "Border terrier",
         "Australian terrier", "golden retriever", "Old English sheepdog", "Samoyed", "dingo"),
        IMAGENET_MEAN, IMAGENET_STD, flip_ok=True, resolutions=(32, 64, 128),
        imagenet_classes=(155, 159, 162, 167, 182, 193, 207, 229, 258, 273)),
}
SPLITS = ("train", "test")
VALUE_SPACES = ("normalized", "unit", "zca")  # value spaces a split (and a saved set) can be in
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ConfigError(f"unknown data set {name!r}; valid: {', '.join(DATASETS)}")
    return DATASETS[name]


def default_root() -> Path:
    return Path(os.environ.get("GENPRIOR_DATA", Path.home() / ".cache" / "genprior" / "data"))


def cache_dir() -> Path:
    """Where computed things are cached (full-data accuracies, expert buffers, FID statistics)."""
    return Path(os.environ.get("GENPRIOR_CACHE", Path.home() / ".cache" / "genprior"))


@dataclass
class Split:
    """One split of a data set in memory: normalized images [N, C, H, W] float32, labels [N] int64."""

    images: torch.Tensor
    labels: torch.Tensor
    info: DatasetInfo
    split: str
    _index: list[torch.Tensor] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def class_index(self) -> list[torch.Tensor]:
        """Indices of each class's images, built once."""
        if self._index is None:
            order = torch.argsort(self.labels, stable=True)
            counts = torch.bincount(self.labels, minlength=self.info.num_classes).tolist()
            self._index = list(torch.split(order, counts))
        return self._index

    def class_count(self, c: int) -> int:
        return len(self.class_index[c])

    def smallest_class(self) -> int:
        return min(self.class_count(c) for c in range(self.info.num_classes))

    def sample_class(self, c: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n distinct random images of class c (fewer only if the class has fewer)."""
        idx = self.class_index[c]
        pick = torch.randperm(len(idx), generator=generator)[:n]
        return self.images[idx[pick]]

    def sample_per_class(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """n random images of every class, class-major: one tensor for one batched forward."""
        picks = [idx[torch.randperm(len(idx), generator=generator)[:n]] for idx in self.class_index]
        sel = torch.cat(picks)
        return self.images[sel], self.labels[sel]

    def random_subset(self, ipc: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A random real subset with exactly `ipc` images of each class: the baseline every set must beat."""
        check_ipc(ipc, self)
        return self.sample_per_class(ipc, generator)


def check_ipc(ipc: int, split: Split) -> None:
    if ipc < 1:
        raise ConfigError(f"ipc must be >= 1, got {ipc}")
    smallest = split.smallest_class()
    if ipc > smallest:
        raise ConfigError(f"ipc {ipc} is larger than the smallest class of {split.info.name}/{split.split} "
                          f"({smallest} images)")


def normalize(x: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    mean = torch.tensor(info.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(info.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


def denormalize(x: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    mean = torch.tensor(info.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(info.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return x * std + mean


def load_split(dataset: str, split: str = "train", root: str | None = None, resolution: int | None = None,
               download: bool = False, space: str = "normalized") -> Split:
    """Load one split into memory (cached per process; treat the tensors as read-only).

    `resolution` resizes (bilinear, antialiased) where it differs from the native one;
    the ImageNet subsets take 32, 64 or 128. `space` is the value space of the images:
    "normalized" (mean/std), "unit" ([0, 1]) or "zca" (normalized, then ZCA-whitened
    with the transform fitted on this data set's train split, eps 0.1, as MTT does)."""
    info = dataset_info(dataset)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if space not in VALUE_SPACES:
        raise ConfigError(f"unknown space {space!r}; valid: {', '.join(VALUE_SPACES)}")
    resolution = resolution or info.resolution
    if info.resolutions and resolution not in info.resolutions:
        raise ConfigError(f"{dataset} resolution must be one of {info.resolutions}, got {resolution}")
    if resolution < 8:
        raise ConfigError(f"resolution must be >= 8, got {resolution}")
    if space == "zca":
        _check_zca_size(info, resolution)  # before a download or a read that would be for nothing
    root = str(root) if root else None
    if download:
        _fetch_if_missing(dataset, split, root, resolution)
    if space == "normalized":
        return _load_split(dataset, split, root, resolution)
    return _in_space(dataset, split, root, resolution, space)


def _fetch_if_missing(dataset: str, split: str, root: str | None, resolution: int) -> None:
    """Download the split where it is not found. The cached splits are keyed by the files, not
    by whether a download was allowed: one copy in memory whichever caller asked."""
    try:
        _load_split(dataset, split, root, resolution)
    except DataNotFound:
        _READERS[dataset](DATASETS[dataset], split, root, resolution, True)


@functools.lru_cache(maxsize=4)
def _in_space(dataset, split, root, resolution, space) -> Split:
    s = _load_split(dataset, split, root, resolution)
    if space == "unit":
        images = denormalize(s.images, s.info)
    else:
        with torch.no_grad():
            images = zca_for(dataset, root, resolution)(s.images)
    return Split(images, s.labels, s.info, split, s.class_index)


def to_unit(images: torch.Tensor, dataset: str, space: str, root: str | None = None) -> torch.Tensor:
    """Images of any value space back to [0, 1] pixels (for PNGs and FID), clamped."""
    info = dataset_info(dataset)
    if space == "zca":
        with torch.no_grad():
            images = _zca_on(dataset, root, images.shape[-1], str(images.device)).inverse(images)
    if space in ("zca", "normalized"):
        images = denormalize(images, info)
    elif space != "unit":
        raise ConfigError(f"unknown space {space!r}; valid: {', '.join(VALUE_SPACES)}")
    return images.clamp(0, 1)


def from_unit(unit: torch.Tensor, dataset: str, space: str, root: str | None = None) -> torch.Tensor:
    """[0, 1] pixels into a value space: the inverse of to_unit, differentiable, not clamped
    (a generator's images enter the objective through it)."""
    info = dataset_info(dataset)
    if space == "unit":
        return unit
    if space not in VALUE_SPACES:
        raise ConfigError(f"unknown space {space!r}; valid: {', '.join(VALUE_SPACES)}")
    images = normalize(unit, info)
    if space == "zca":
        images = _zca_on(dataset, root, unit.shape[-1], str(unit.device))(images)
    return images


ZCA_MAX_DIM = 3 * 64 * 64  # Tiny ImageNet's, the largest MTT whitens


def _check_zca_size(info: DatasetInfo, resolution: int | None) -> None:
    res = resolution or info.resolution
    dim = info.channels * res * res
    if dim > ZCA_MAX_DIM:  # its covariance is dim x dim in float64, and eigh of it takes hours
        raise ConfigError(f"space zca at {res} px: a {dim}-dim covariance ({dim * dim * 8 / 2 ** 30:.0f} GiB); ZCA "
                          f"takes images of up to {ZCA_MAX_DIM} values (64 px RGB): dataset.resolution=64 or less, "
                          f"or dataset.space=normalized")


@functools.lru_cache(maxsize=2)
def zca_for(dataset: str, root: str | None = None, resolution: int | None = None) -> ZCA:
    """The ZCA transform of a data set: fitted once on its normalized train split."""
    _check_zca_size(dataset_info(dataset), resolution)
    return ZCA.fit(load_split(dataset, "train", root, resolution).images, eps=0.1)


@functools.lru_cache(maxsize=4)
def _zca_on(dataset: str, root: str | None, resolution: int, device: str) -> ZCA:
    """zca_for's transform on `device`: a copy per device, so that no caller moves the shared one
    (on a GPU, a latent synset's images went through it, and then the CPU splits did not)."""
    import copy

    zca = zca_for(dataset, root, resolution)
    return zca if torch.device(device) == next(zca.buffers()).device else copy.deepcopy(zca).to(device)


@functools.lru_cache(maxsize=8)
def _load_split(dataset: str, split: str, root: str | None, resolution: int) -> Split:
    info = DATASETS[dataset]
    uint8, labels = _READERS[dataset](info, split, root, resolution, False)
    images = uint8.float().div_(255.0)
    if resolution and images.shape[-1] != resolution:
        images = F.interpolate(images, size=(resolution, resolution), mode="bilinear",
                               antialias=True, align_corners=False).clamp_(0, 1)
    return Split(normalize(images, info), labels.long(), info, split)


# ---------------------------------------------------------------- locating files

def _candidates(root: str | None, *subdirs: str) -> list[Path]:
    bases = ([Path(root)] if root else []) + [default_root()]
    return [b / s for b in bases for s in subdirs]


def _find(dirs: list[Path], names: list[str]) -> Path | None:
    """First directory that holds every name (plain or .gz)."""
    for d in dirs:
        if all((d / n).exists() or (d / (n + ".gz")).exists() for n in names):
            return d
    return None


def _torchvision_download(cls_name: str, root: Path, **kwargs) -> None:
    import torchvision.datasets as tvd

    root.mkdir(parents=True, exist_ok=True)
    try:
        getattr(tvd, cls_name)(str(root), download=True, **kwargs)
    except Exception as e:  # offline, mirror down, disk full: say it in one line
        raise ConfigError(f"downloading {cls_name} into {root} failed: {type(e).__name__}: {e}") from None


# ---------------------------------------------------------------- IDX (MNIST, FashionMNIST)

def read_idx(path: Path) -> np.ndarray:
    """IDX format: 2 zero bytes, dtype code, ndim, big-endian int32 dims, raw data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ConfigError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ConfigError(f"{path} is truncated: header says {dims}, found {data.size} values")
    return data.reshape(dims)


def _idx_path(d: Path, name: str) -> Path:
    return d / name if (d / name).exists() else d / (name + ".gz")


def _read_mnist_like(info, split, root, resolution, download, tv_name: str, debian: Path | None):
    prefix = "train" if split == "train" else "t10k"
    names = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
    dirs = ([Path(root), Path(root) / tv_name / "raw"] if root else [])
    dirs += [debian] if debian else []
    dirs += [default_root() / tv_name / "raw"]
    found = _find(dirs, names)
    if found is None and download:
        dl_root = Path(root) if root else default_root()
        _torchvision_download(tv_name, dl_root, train=(split == "train"))
        found = _find([dl_root / tv_name / "raw"], names)
    if found is None:
        raise DataNotFound(info.name, dirs, "the IDX files",
                           also="install the Debian package dataset-fashion-mnist, " if debian else "")
    images = read_idx(_idx_path(found, names[0]))
    labels = read_idx(_idx_path(found, names[1]))
    if root and found == Path(root):  # the top level of a root may hold either family's files, same names
        mean = float(images.mean()) / 255  # against each family's normalization mean
        nearest = min(MNIST_FAMILY, key=lambda name: abs(DATASETS[name].mean[0] - mean))
        if nearest != info.name:
            raise ConfigError(f"{found} holds {nearest}'s IDX files, by their pixel mean {mean:.3f} ({info.name}'s "
                              f"is {DATASETS[info.name].mean[0]}); point dataset.root at the {info.name} files")
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


MNIST_FAMILY = ("mnist", "fashion_mnist")


def _read_fashion_mnist(info, split, root, resolution, download):
    return _read_mnist_like(info, split, root, resolution, download, "FashionMNIST", DEBIAN_FASHION_MNIST)


def _read_mnist(info, split, root, resolution, download):
    return _read_mnist_like(info, split, root, resolution, download, "MNIST", None)


# ---------------------------------------------------------------- CIFAR (python batches)

class _ArrayUnpickler(pickle.Unpickler):
    """CIFAR batches are pickled dicts of numpy arrays; admit nothing that could run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _load_batch(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            d = _ArrayUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise ConfigError(f"{path} is not a CIFAR batch file ({e})") from None
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}


def _read_cifar(info, split, root, resolution, download, folder, train_files, test_files, label_key, tv_name):
    files = train_files if split == "train" else test_files
    dirs = _candidates(root, folder)
    found = _find(dirs, files)
    if found is None and download:
        dl_root = Path(root) if root else default_root()
        _torchvision_download(tv_name, dl_root, train=(split == "train"))
        found = _find([dl_root / folder], files)
    if found is None:
        raise DataNotFound(info.name, dirs, f"{folder}/")
    batches = [_load_batch(found / f) for f in files]
    data = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
    labels = np.concatenate([np.asarray(b[label_key], dtype=np.int64) for b in batches])
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels)


def _read_cifar10(info, split, root, resolution, download):
    return _read_cifar(info, split, root, resolution, download, "cifar-10-batches-py",
                       [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", "CIFAR10")


def _read_cifar100(info, split, root, resolution, download):
    return _read_cifar(info, split, root, resolution, download, "cifar-100-python",
                       ["train"], ["test"], "fine_labels", "CIFAR100")


# ---------------------------------------------------------------- SVHN (.mat)

def _read_svhn(info, split, root, resolution, download):
    from scipy.io import loadmat

    name = f"{split}_32x32.mat"
    dirs = _candidates(root, "", "svhn", "SVHN")
    found = _find(dirs, [name])
    if found is None and download:
        dl_root = Path(root) if root else default_root()
        for each in ("train", "test"):  # one file per split: a run downloads its train split and
            _torchvision_download("SVHN", dl_root, split=each)  # is judged on the test split hours later
        found = _find([dl_root], [name])
    if found is None:
        raise DataNotFound(info.name, dirs, name)
    mat = loadmat(found / name)
    x = np.transpose(mat["X"], (3, 2, 0, 1))  # stored [H, W, C, N]
    y = mat["y"].reshape(-1).astype(np.int64) % 10  # SVHN labels the digit 0 as 10
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8)), torch.from_numpy(y)


# ---------------------------------------------------------------- ImageNet subsets (ImageFolder)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def _read_image_folder(info, split, root, resolution, download, wnids, folders):
    from PIL import Image
    from genprior.progress import progress
    import torchvision.transforms.functional as TF

    sub = "train" if split == "train" else "val"
    dirs = [d / sub for d in _candidates(root, "", *folders)]
    found = _find(dirs, list(wnids))
    if found is None:
        raise DataNotFound(info.name, dirs, f"{sub}/<wnid>/ folders", downloadable=False,
                           also=f"download the fast.ai {info.name} archive and ")
    items = [(p, c) for c, w in enumerate(wnids) for p in sorted((found / w).iterdir())
             if p.suffix.lower() in IMAGE_SUFFIXES]
    images = torch.empty(len(items), 3, resolution, resolution, dtype=torch.uint8)
    for i, (p, _) in enumerate(progress(items, desc=f"{info.name}/{split} @{resolution}px", leave=False)):
        with Image.open(p) as im:
            im = TF.center_crop(TF.resize(im.convert("RGB"), resolution, antialias=True), resolution)
            images[i] = TF.pil_to_tensor(im)
    return images, torch.tensor([c for _, c in items], dtype=torch.int64)


def _read_imagenette(info, split, root, resolution, download):
    return _read_image_folder(info, split, root, resolution, download, IMAGENETTE_WNIDS,
                              ["imagenette", "imagenette2", "imagenette2-320", "imagenette2-160"])


def _read_imagewoof(info, split, root, resolution, download):
    return _read_image_folder(info, split, root, resolution, download, IMAGEWOOF_WNIDS,
                              ["imagewoof", "imagewoof2", "imagewoof2-320", "imagewoof2-160"])


_READERS = {
    "fashion_mnist": _read_fashion_mnist, "mnist": _read_mnist, "cifar10": _read_cifar10,
    "cifar100": _read_cifar100, "svhn": _read_svhn, "imagenette": _read_imagenette,
    "imagewoof": _read_imagewoof,
}
