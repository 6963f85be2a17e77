"""rot90-CIFAR10: both data layouts, rotation determinism, invariant classifiers, the runner."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets

import equi
from equi.config import compose_config
from equi.data import cifar
from equi.errors import ConfigError, DataError, MissingAssetError
from equi.experiment import execute
from equi.groups import image
from equi.methods import wrap
from equi.models.cnn import cifar_model, imagenet_model, imagenet_state_dict
from equi.schema import check
from equi.tasks.cnn import ours
from equi.tasks.cnn import toolkit as cnn

FOLDER = "cifar10"


def test_folder_layout_loads_the_first_images_of_each_class(fixture_data):
    images, labels = cifar.load(fixture_data / FOLDER, "test", per_class=3)
    assert images.shape == (30, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.tolist() == [c for c in range(10) for _ in range(3)]
    first_cat = fixture_data / FOLDER / "test" / "cat" / "0000.jpg"
    assert torch.equal(images[9], torch.from_numpy(np.array(Image.open(first_cat).convert("RGB"))).permute(2, 0, 1))


@pytest.mark.real_data("cifar10")
def test_full_splits_have_the_cifar10_sizes(real_data, tmp_path):
    train = cifar.load(real_data / FOLDER, "train", cache_dir=tmp_path)
    test = cifar.load(real_data / FOLDER, "test")
    assert (len(train[0]), len(test[0])) == (50000, 10000)
    assert train[1].bincount().tolist() == [5000] * 10 and test[1].bincount().tolist() == [1000] * 10
    cached = cifar.load(real_data / FOLDER, "train", cache_dir=tmp_path)  # decoded once, then read back
    assert len(list((tmp_path / "cifar").glob("*.pt"))) == 1 and torch.equal(cached[0], train[0])


def write_binary_release(root, images, labels):
    """torchvision's cifar-10-batches-py layout: pickled dicts of (N, 3072) uint8 rows."""
    folder = root / cifar.BINARY_FOLDER
    folder.mkdir(parents=True)
    rows = images.reshape(len(images), -1).numpy()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": rows, "labels": labels.tolist()}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(cifar.CLASSES)}, f)


def test_binary_layout_gives_the_same_tensors(fixture_data, tmp_path, monkeypatch):
    images, labels = cifar.load(fixture_data / FOLDER, "test", per_class=2)
    write_binary_release(tmp_path, images, labels)
    monkeypatch.setattr(datasets.cifar, "check_integrity", lambda *a: True)  # our files lack the release's md5s
    assert cifar.layout(tmp_path) == "binary"
    again, again_labels = cifar.load(tmp_path, "test", per_class=1)
    assert torch.equal(again, images[::2]) and again_labels.tolist() == list(range(10))
    monkeypatch.undo()
    with pytest.raises(DataError, match=r"cifar-10-batches-py/\w+: md5 check failed"):
        cifar.load(tmp_path, "test")


def test_missing_data_is_one_line_naming_the_folder(tmp_path):
    with pytest.raises(MissingAssetError) as err:
        cifar.load(tmp_path / "nowhere", "train")
    message = str(err.value)
    assert str(tmp_path / "nowhere") in message and "task.data_root" in message and "\n" not in message
    with pytest.raises(ConfigError, match="unknown CIFAR-10 split 'val'"):
        cifar.load(tmp_path, "val")


def test_quarter_turns_are_fixed_by_the_seed():
    assert torch.equal(cifar.quarter_turns(1000, 0), cifar.quarter_turns(1000, 0))
    assert not torch.equal(cifar.quarter_turns(1000, 0), cifar.quarter_turns(1000, 1))
    assert cifar.quarter_turns(1000, 0).bincount().min() > 200  # all four turns, roughly evenly


def test_rotate_turns_each_image_by_its_own_count():
    images = torch.arange(4 * 3 * 4 * 4, dtype=torch.uint8).reshape(4, 3, 4, 4)
    turns = torch.tensor([0, 1, 2, 3])
    out = cifar.rotate(images, turns)
    for i in range(4):
        assert torch.equal(out[i], torch.rot90(images[i], i, dims=(-2, -1)))


def test_augment_crops_within_the_padding_and_keeps_shape():
    ones = torch.full((64, 3, 32, 32), 7, dtype=torch.uint8)
    out = cifar.augment(ones, torch.Generator().manual_seed(0))
    assert out.shape == ones.shape
    zeros_per_image = (out == 0).flatten(1).sum(1)
    assert zeros_per_image.max() > 0 and (zeros_per_image <= 3 * (32 * 32 - 28 * 28)).all()
    images = torch.randint(256, (64, 3, 32, 32), dtype=torch.uint8)
    same = [cifar.augment(images, torch.Generator().manual_seed(3)) for _ in range(2)]
    assert torch.equal(*same)  # crops and mirrors come from the run's generator only


METHODS = {
    "equitune": {"name": "equitune"},
    "equizero-entropy": {"name": "equizero", "proxy": "entropy", "straight_through": True},
    "equizero-neg_max_prob": {"name": "equizero", "proxy": "neg_max_prob", "straight_through": True},
    "lambda": {"name": "lambda", "lambda_hidden": 100, "lambda_layers": 2, "lambda_residual": False},
}


def wrapped(method: dict, arch: str):
    from omegaconf import OmegaConf

    model = cifar_model(arch).eval()
    lam = method["name"] == "lambda"
    return wrap(OmegaConf.create(method), model.head if lam else model, group=image.rot90(), invariant=True,
                encoder=model.backbone if lam else None, feature_dim=model.feature_dim)


@pytest.mark.parametrize("arch", ["resnet18", "alexnet"])
@pytest.mark.parametrize("method", METHODS)
def test_rotating_an_image_leaves_the_prediction_unchanged(fixture_data, arch, method):
    images, _ = cifar.load(fixture_data / FOLDER, "test", per_class=1)
    x = cifar.normalize(images)
    net = wrapped(METHODS[method], arch)
    with torch.no_grad():
        logits = net(x)
        for k in (1, 2, 3):
            turned = net(torch.rot90(x, k, dims=(-2, -1)))
            assert torch.allclose(turned, logits, atol=1e-4)
            assert torch.equal(turned.argmax(-1), logits.argmax(-1))


@pytest.mark.parametrize("arch", ["resnet18", "alexnet"])
def test_the_plain_network_is_not_invariant(fixture_data, arch):
    x = cifar.normalize(cifar.load(fixture_data / FOLDER, "test", per_class=1)[0])
    model = cifar_model(arch).eval()
    with torch.no_grad():
        assert not torch.allclose(model(torch.rot90(x, 1, dims=(-2, -1))), model(x), atol=1e-4)


def test_lambda_network_sees_backbone_features_in_one_pass():
    model = cifar_model("resnet18").eval()
    calls = []
    model.backbone.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    net = wrapped(METHODS["lambda"], "resnet18")
    net.encoder, net.model = model.backbone, model.head
    _, weights = net(torch.randn(5, 3, 32, 32), return_weights=True)
    assert calls == [20] and weights.shape == (4, 5)
    assert torch.allclose(weights.sum(0), torch.ones(5))


def test_upright_share_finds_the_upright_view():
    turns = torch.tensor([0, 1, 2, 3])
    one_hot = torch.zeros(4, 4)
    one_hot[(-turns) % 4, torch.arange(4)] = 1.0
    assert cnn.upright_share(one_hot, turns) == (1.0, 1.0)
    assert cnn.upright_share(torch.full((4, 4), 0.25), turns)[0] == 0.25


@pytest.mark.parametrize("arch,trained", [("resnet18", 128 * 256 * 9 + 256 * 256 * 9 + 128 * 256 + 3 * 2 * 256 + 256 * 10 + 10),
                                          ("alexnet", 512 * 256 + 256 + 256 * 10 + 10)])
def test_linear_probing_trains_exactly_the_last_two_layers(arch, trained):
    model = cifar_model(arch)
    part = ours.finetuned_part(model, "last2")
    assert sum(p.numel() for p in part.parameters()) == trained
    assert ours.finetuned_part(model, "all") is model
    assert check(compose_config(["task=cnn", "task.finetune.layers=last3"])).startswith(
        "unknown task.finetune.layers 'last3'; choose one of: all, last2")


def test_imagenet_models_get_a_cifar_head_and_upsampled_inputs():
    model = imagenet_model("resnet18", input_size=64).eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10) and model.feature_dim == 512
    assert model.probe[0] is model.backbone.net.layer4[-1]
    alex = imagenet_model("alexnet", input_size=64).eval()
    assert alex(torch.randn(2, 3, 32, 32)).shape == (2, 10) and alex.feature_dim == 4096


def test_missing_imagenet_weights_name_the_cache_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(MissingAssetError) as err:
        imagenet_state_dict("resnet18")
    assert f"{tmp_path}/checkpoints/resnet18-f37072fd.pth" in str(err.value) and "task.weights=scratch" in str(err.value)


def fast(*overrides):
    return compose_config(["task=cnn", "fast=true", "logger=none", "task.weights=scratch", *overrides])


def test_fast_runs_share_the_pretrained_network_and_the_test_rotations(tmp_path, fixture_data):
    records = {m: execute(fast(f"method={m}", "task.model=alexnet"), tmp_path / m)["metrics"]
               for m in ("vanilla", "equitune", "equizero", "lambda")}
    assert records["vanilla"]["weights"] == "cifar10-scratch (trained)"
    assert {r["weights"] for m, r in records.items() if m != "vanilla"} == {"cifar10-scratch (cache)"}
    assert {r["upright_test_accuracy"] for r in records.values()} == {records["vanilla"]["upright_test_accuracy"]}
    assert all(len(r["curve"]) == 2 and r["test_images"] == 50 for r in records.values())
    assert records["equizero"]["proxy"] == "entropy"
    turns = {tuple(r["weight_examples"]["turns"]) for m, r in records.items() if m != "vanilla"}
    assert len(turns) == 1  # the same rotated test set for every method
    for row in torch.tensor(records["equizero"]["weight_examples"]["weights"]):  # argmin views share the weight
        kept = row[row > 0]
        assert torch.allclose(kept, torch.full_like(kept, 1 / len(kept)))


def test_linear_probe_run_leaves_the_backbone_untouched(tmp_path, fixture_data, monkeypatch):
    kept = {}
    original = cnn.fit

    def spy(net, params, *args, **kwargs):
        kept["ids"] = {id(p) for p in params}
        kept["model"] = net
        return original(net, params, *args, **kwargs)

    monkeypatch.setattr(ours, "fit", spy)  # our protocol's λ stage and finetuning
    execute(fast("method=equitune", "task.model=resnet18", "task.finetune.layers=last2"), tmp_path)
    model = kept["model"].model
    assert kept["ids"] == {id(p) for p in model.probe.parameters()}
    assert not any(p.requires_grad for p in model.backbone.net[0].parameters())


def test_imagenet_request_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(MissingAssetError, match="ImageNet weights for alexnet"):
        execute(fast("method=vanilla", "task.model=alexnet", "task.weights=imagenet"), tmp_path)
    with pytest.raises(ConfigError, match="unknown task.weights 'imagenett'"):
        execute(fast("method=vanilla", "task.weights=imagenett"), tmp_path / "b")


def test_check_equivariance_idiom_passes_the_wrapped_cnn_and_catches_the_plain_one():
    x = torch.randn(3, 3, 32, 32)
    group = image.rot90()
    equi.check_equivariance(wrapped(METHODS["equitune"], "alexnet"), x, equi.group_pairs(group, invariant=True), atol=1e-4)
    with pytest.raises(AssertionError, match="not equivariant under rot90"):
        equi.check_equivariance(cifar_model("alexnet").eval(), x, equi.group_pairs(group, invariant=True), atol=1e-4)
