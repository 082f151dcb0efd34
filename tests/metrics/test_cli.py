"""The metrics command line on run directories, set files and image folders, and its bad input."""
import json

import pytest
import torch
from PIL import Image

from genprior.errors import ConfigError
from genprior.metrics.__main__ import main
from genprior.setfile import save_set
from tests.conftest import needs_fashion_mnist
from tests.metrics.conftest import fashion, needs_inception


def _folder(root, images, class_folders=True):
    for i, x in enumerate(images):
        d = root / f"{i % 2:03d}_class" if class_folders else root
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray((x[0] * 255).round().byte().numpy()).save(d / f"{i}.png")
    return root


def test_empty_folder_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "dataset=fashion_mnist"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no images" in err


def test_mixed_sizes_are_one_line_exit_2(tmp_path, capsys):
    d = tmp_path / "mixed"
    d.mkdir()
    Image.new("L", (28, 28)).save(d / "a.png")
    Image.new("L", (32, 32)).save(d / "b.png")
    assert main([str(d), "dataset=fashion_mnist"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "mixed sizes" in err and "28x28" in err and "32x32" in err


def test_other_bad_input(tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "f").mkdir()
    Image.new("L", (28, 28)).save(tmp_path / "f" / "a.png")
    assert main([str(tmp_path / "f")]) == 2  # a folder does not say its data set
    assert "dataset=NAME" in capsys.readouterr().err
    assert main([str(tmp_path / "f"), "datset=mnist"]) == 2
    assert "valid: dataset=" in capsys.readouterr().err
    assert main([str(tmp_path / "f"), "dataset=mnist", "--limit", "0"]) == 2
    assert "--limit must be >= 1, got 0" in capsys.readouterr().err
    assert main([str(tmp_path / "f"), "dataset=mnist", "--min-fid", "1"]) == 2
    assert "--min-fid must be >= 2" in capsys.readouterr().err


@needs_inception
@needs_fashion_mnist
def test_too_few_images_for_fid_still_report_kid_and_exit_2(tmp_path, capsys):
    x, _ = fashion("train", 4)
    d = _folder(tmp_path / "few", x, class_folders=False)
    out = tmp_path / "m.json"
    assert main([str(d), "dataset=fashion_mnist", "--limit", "20", "--no-lpips", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if "error:" in line]  # (beside a progress bar)
    assert len(errors) == 1 and "FID needs at least 10" in errors[0]
    m = json.loads(out.read_text())["inception"]["overall"]
    assert m["fid"] is None and m["kid"] is not None and m["n"] == 4
    assert "KID" in captured.out


@needs_inception
@needs_fashion_mnist
def test_run_directory_gets_images_merged_into_its_metrics(tmp_path):
    x, y = fashion("train", 12)
    run = tmp_path / "run"
    save_set(run / "synset.safetensors", (x - 0.2861) / 0.3530, y, "fashion_mnist")
    (run / "metrics.json").write_text(json.dumps({"synthetic": {"convnet": {"mean": 50.0, "std": 1.0}}}))
    assert main([str(run), "--limit", "20"]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["synthetic"]["convnet"]["mean"] == 50.0  # the accuracy is kept
    im = m["images"]
    assert im["n"] == 12 and im["inception"]["overall"]["fid"] > 0
    assert set(im["inception"]["per_class"]) == {str(c) for c in y.unique().tolist()}
    assert "unavailable" in im["lpips"] or im["lpips"]["mean"] is not None
    # the same images as a class-folder export measure the same
    d = _folder(tmp_path / "folder", x)
    assert main([str(d), "dataset=fashion_mnist", "--limit", "20", "--no-lpips", "--out", str(tmp_path / "f.json")]) == 0
    f = json.loads((tmp_path / "f.json").read_text())
    assert f["inception"]["overall"]["fid"] == pytest.approx(im["inception"]["overall"]["fid"], rel=1e-6)


def test_class_folders_are_labelled_by_number_or_class_name_never_by_text_order(tmp_path):
    from genprior.data import dataset_info
    from genprior.errors import ConfigError
    from genprior.metrics.targets import read_image_folder

    names = dataset_info("fashion_mnist").class_names

    def labels(*folders):
        root = tmp_path / "-".join(folders)
        for f in folders:
            (root / f).mkdir(parents=True)
            Image.new("L", (28, 28)).save(root / f / "a.png")
        return read_image_folder(root, names)[1].tolist()

    assert labels("8", "9") == [8, 9]  # bare numbers (torchvision-style "0".."9"), not positions 0, 1
    assert labels("007_sneaker", "009_ankle_boot") == [7, 9]  # as runs write them
    assert labels("Sneaker", "ankle_boot") == [7, 9]  # class names, in the data set's order
    assert labels("a", "b") == [0, 1]  # neither: sorted positions, as torchvision's ImageFolder
    with pytest.raises(ConfigError, match="not a mix"):
        labels("3", "Bag")
    with pytest.raises(ConfigError, match=r"class folder 12_extra is label 12, but the data set has 10 classes"):
        labels("3", "12_extra")  # names the folder, not a count of folders


def test_sixteen_bit_images_are_scaled_by_their_depth_not_clipped(tmp_path, monkeypatch):
    import numpy as np

    from genprior.metrics import targets

    values = (np.arange(784) * 83).astype(np.uint16).reshape(28, 28)  # 0 .. 65072, most above 255
    (tmp_path / "flat").mkdir()
    Image.fromarray(values).save(tmp_path / "flat" / "a.png")  # a 16-bit grayscale PNG
    expected = torch.from_numpy(values.astype(np.float32) / 65535)
    unit, labels = targets.read_image_folder(tmp_path / "flat", ())
    assert labels is None and unit.shape == (1, 1, 28, 28)
    assert torch.allclose(unit[0, 0], expected, atol=1 / 255)

    # older Pillows open the same file as mode "I" (32-bit signed): read as 16-bit too
    open_image = Image.open
    monkeypatch.setattr(targets.Image, "open", lambda f: open_image(f).convert("I"))
    assert torch.allclose(targets.read_image_folder(tmp_path / "flat", ())[0][0, 0], expected, atol=1 / 255)
    monkeypatch.setattr(targets.Image, "open", lambda f: open_image(f).convert("I").point(lambda v: v * 2))
    with pytest.raises(ConfigError, match="outside 16 bits"):
        targets.read_image_folder(tmp_path / "flat", ())


def _fake_metrics(fid=1.5, fid_unavailable=None, n=4, n_ref=20):
    """A stand-in for image_metrics: what the command line does with its result is what is tested."""
    overall = {"n": n, "n_ref": n_ref, "fid": fid, "kid": 0.01}
    if fid_unavailable:
        overall["fid_unavailable"] = fid_unavailable
    diversity = {"mean": 1.0, "per_class": {"0": 1.0}}
    return lambda *args, **kwargs: {"n": n, "inception": {"overall": overall, "diversity": diversity,
                                                          "reference_diversity": diversity}}


def _flat_folders(tmp_path, *names):
    for name in names:
        (tmp_path / name).mkdir()
        Image.new("L", (28, 28)).save(tmp_path / name / "a.png")
    return [str(tmp_path / name) for name in names]


def test_stdout_holds_exactly_one_json_document(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("genprior.metrics.__main__.image_metrics", _fake_metrics())
    a, b = _flat_folders(tmp_path, "a", "b")
    assert main([a, "dataset=fashion_mnist"]) == 0
    captured = capsys.readouterr()
    m = json.loads(captured.out)  # `> m.json` is valid JSON: the summary went to stderr
    assert m["source"] == a and m["inception"]["overall"]["fid"] == 1.5  # --out's shape
    assert "FID 1.50" in captured.err
    assert main([a, b, "dataset=fashion_mnist"]) == 0
    both = json.loads(capsys.readouterr().out)  # several targets: one object keyed by target
    assert set(both) == {a, b} and both[b]["source"] == b


def test_a_bad_device_is_one_line_exit_2(tmp_path, capsys):
    (folder,) = _flat_folders(tmp_path, "a")
    assert main([folder, "dataset=fashion_mnist", "--device", "nodevice"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--device nodevice" in err


def test_min_fid_is_suggested_only_when_there_are_too_few_images(tmp_path, capsys, monkeypatch):
    (folder,) = _flat_folders(tmp_path, "a")
    complex_root = "the covariances' square root is not real (Imaginary component 1); a larger sample fixes it"
    monkeypatch.setattr("genprior.metrics.__main__.image_metrics", _fake_metrics(None, complex_root, n=12))
    assert main([folder, "dataset=fashion_mnist"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "not real" in errors[0] and "--min-fid" not in errors[0]
    too_few = _fake_metrics(None, "4 images; FID needs at least 10")
    monkeypatch.setattr("genprior.metrics.__main__.image_metrics", too_few)
    assert main([folder, "dataset=fashion_mnist"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "use --min-fid to lower it" in errors[0]


def test_folders_named_as_the_export_names_classes_read_back_as_those_classes(tmp_path):
    from genprior.data import dataset_info
    from genprior.errors import ConfigError
    from genprior.export import save_image_folder
    from genprior.metrics.targets import read_image_folder

    names = dataset_info("fashion_mnist").class_names  # "T-shirt/top" cannot be a folder's name
    exported = save_image_folder(torch.zeros(10, 1, 28, 28), torch.arange(10), names, tmp_path / "export")
    folders = sorted(p.name for p in exported.iterdir())
    assert folders[0] == "000_T_shirt_top" and folders[9] == "009_Ankle_boot"  # exported sets keep their names
    bare = tmp_path / "by_name"  # the same folders without their numbers, sorted as text (not in class order)
    bare.mkdir()
    for f in folders:
        (exported / f).rename(bare / f[4:])
    found = sorted(p.name for p in bare.iterdir())
    assert found[:3] == ["Ankle_boot", "Bag", "Coat"]
    labels = read_image_folder(bare, names)[1].tolist()
    assert labels == [names.index(n) for n in ("Ankle boot", "Bag", "Coat", "Dress", "Pullover", "Sandal", "Shirt",
                                               "Sneaker", "T-shirt/top", "Trouser")]
    (bare / "7").mkdir()
    Image.new("L", (28, 28)).save(bare / "7" / "a.png")
    with pytest.raises(ConfigError, match="not a mix") as e:
        read_image_folder(bare, names)
    assert "T_shirt_top, Trouser, Pullover" in str(e.value)  # a folder name that can exist
