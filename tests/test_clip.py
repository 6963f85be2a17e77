"""CLIP: invariance of every method on tiny random open_clip models, one encoder pass for λ,
cached zero-shot heads, one-line errors for missing weights and data, the transforms, the runner."""

import subprocess
import sys
from contextlib import contextmanager

import pytest
import torch
from omegaconf import OmegaConf

import equi
from equi.cache import checkpoint_path
from equi.config import compose_config
from equi.tasks.clip import assets as clip_asset_rows
from equi.data import catalog, imagesets
from equi.data.prompts import CIFAR10_CLASSES, CIFAR_TEMPLATES
from equi.errors import ConfigError, MissingAssetError
from equi.experiment import execute
from equi.groups import image
from equi.methods import wrap
from equi.models import clip as clipmodels
from equi.models import clip_standin
from equi.tasks.clip import check_assets
from equi.tasks.clip import figures as clip_figures
from equi.tasks.clip import runner as cliptask

from .conftest import REPO

TEXT = {"context_length": 12, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}
TINY = {
    "resnet": {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8}, "text_cfg": TEXT},
    "vit": {"embed_dim": 16, "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 1, "head_width": 16},
            "text_cfg": TEXT},
}
ATOL = 1e-5  # on class probabilities / scaled similarities of float32 models
CLASSES = ("cat", "dog", "ship")


def tiny(kind):
    torch.manual_seed(0)
    return clipmodels.standin_clip(TINY[kind]).eval()


def method_cfg(name, **extra):
    cfg = compose_config(["task=clip", f"method={name}"]).method
    for key, value in extra.items():
        cfg[key] = value
    return cfg


def wrapped(model, name, group, scale=100.0):
    heads = clipmodels.zero_shot_weights(model, CLASSES, ("a photo of a {}.",), None, None, torch.device("cpu"))
    head = clipmodels.ZeroShotHead(heads, scale, probabilities=name in ("equitune", "lambda"))
    return wrap(method_cfg(name), head, group=group, invariant=True, encoder=clipmodels.ImageEncoder(model.visual),
                feature_dim=heads.shape[0], default_proxy="neg_similarity")


@pytest.mark.parametrize("kind", ["resnet", "vit"])
@pytest.mark.parametrize("group", [image.rot90, image.flip, image.rot180, image.rot90_flip])
def test_every_method_is_invariant_to_its_group_and_vanilla_is_not(kind, group):
    model, g = tiny(kind), group()
    x = torch.randn(3, 3, 32, 32)
    for name in ("equitune", "equizero", "lambda"):
        net = wrapped(model, name, g).eval()
        equi.check_equivariance(net, x, equi.group_pairs(g, invariant=True), atol=ATOL)
    vanilla = wrapped(model, "vanilla", g)
    with pytest.raises(AssertionError, match="not equivariant"):
        equi.check_equivariance(vanilla, x, equi.group_pairs(g, invariant=True), atol=ATOL)


def test_lambda_reads_the_features_of_the_single_encoder_call():
    model = tiny("resnet")
    net = wrapped(model, "lambda", image.rot90())
    calls = []
    model.visual.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    seen = []
    net.weighting.net.register_forward_hook(lambda module, args, out: seen.append(args[0].clone()))
    x = torch.randn(2, 3, 32, 32)
    net(x)
    assert calls == [4 * 2]  # one pass over all 4 views of both images
    expected = clipmodels.ImageEncoder(model.visual)(image.rot90().orbit(x))
    assert torch.allclose(seen[0], expected, atol=1e-6)


def test_frozen_lambda_features_come_from_a_copy_that_does_not_train():
    model = tiny("resnet")
    net = cliptask.with_frozen_lambda_features(method_cfg("lambda"), wrapped(model, "lambda", image.rot90()), 16)
    model.visual.requires_grad_(True)
    frozen_before = [p.clone() for p in net.encoder.frozen.parameters()]
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 2])
    calls = []
    model.visual.register_forward_hook(lambda *a: calls.append("finetuned"))
    net.encoder.frozen.visual.register_forward_hook(lambda *a: calls.append("frozen"))
    out = net(x)
    assert calls == ["finetuned", "frozen"]
    assert torch.allclose(out.sum(-1), torch.ones(2), atol=1e-5)  # still a probability vector
    opt = torch.optim.SGD(net.encoder.encoder.parameters(), lr=0.1)
    cliptask.loss_of(out, y, probabilities=True).backward()
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(frozen_before, net.encoder.frozen.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(frozen_before, net.encoder.encoder.parameters()))
    equi.check_equivariance(net.eval(), x, equi.group_pairs(image.rot90(), invariant=True), atol=ATOL)


def test_loss_is_nll_of_probabilities_and_ce_of_logits_never_ce_of_a_softmax():
    logits, y = torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1])
    ce = torch.nn.functional.cross_entropy(logits, y)
    assert torch.allclose(cliptask.loss_of(logits, y, probabilities=False), ce)
    assert torch.allclose(cliptask.loss_of(logits.softmax(-1), y, probabilities=True), ce, atol=1e-6)


def test_zero_shot_heads_are_cached_by_weights_classes_and_templates(tmp_path, monkeypatch):
    model = tiny("resnet")
    built = []
    real = clipmodels.open_clip.build_zero_shot_classifier
    monkeypatch.setattr(clipmodels.open_clip, "build_zero_shot_classifier",
                        lambda *a, **k: built.append(1) or real(*a, **k))
    args = (CLASSES, ("a photo of a {}.", "a {}."))
    first = clipmodels.zero_shot_weights(model, *args, "tiny|seed0", tmp_path, torch.device("cpu"))
    again = clipmodels.zero_shot_weights(model, *args, "tiny|seed0", tmp_path, torch.device("cpu"))
    assert len(built) == 1 and torch.equal(first, again) and first.shape == (16, 3)
    assert torch.allclose(first.norm(dim=0), torch.ones(3), atol=1e-5)
    clipmodels.zero_shot_weights(model, CLASSES[:2], args[1], "tiny|seed0", tmp_path, torch.device("cpu"))
    clipmodels.zero_shot_weights(model, CLASSES, args[1][:1], "tiny|seed0", tmp_path, torch.device("cpu"))
    clipmodels.zero_shot_weights(model, *args, "other weights", tmp_path, torch.device("cpu"))
    clipmodels.zero_shot_weights(model, *args, None, tmp_path, torch.device("cpu"))  # random weights: never cached
    assert len(built) == 5 and len(list((tmp_path / "clip" / "heads").glob("*.pt"))) == 4


def test_rot180_is_a_rotation_and_flip_is_a_mirror():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float).reshape(2, 3, 4, 4)
    assert torch.equal(image.rot180().act_input(1, x), torch.flip(x, dims=(-2, -1)))  # the paper's "flip"
    assert torch.equal(image.rot180().act_input(1, x), torch.rot90(x, 2, dims=(-2, -1)))
    assert torch.equal(image.flip().act_input(1, x), x[..., torch.arange(3, -1, -1)])  # columns reversed only
    assert not torch.equal(image.flip().act_input(1, x), image.rot180().act_input(1, x))


def test_per_image_and_per_batch_transform_draws():
    per_image = cliptask.draw_elements(64, 4, "image", 8, torch.Generator().manual_seed(0))
    per_batch = cliptask.draw_elements(20, 4, "batch", 8, torch.Generator().manual_seed(0))
    assert per_image.unique().tolist() == [0, 1, 2, 3]
    assert [len(per_batch[i : i + 8].unique()) for i in (0, 8, 16)] == [1, 1, 1] and len(per_batch) == 20
    x = torch.randn(3, 3, 4, 4)
    out = image.rot90().act_each(torch.tensor([0, 1, 3]), x)
    assert torch.equal(out[0], x[0]) and torch.equal(out[1], torch.rot90(x[1], 1, (-2, -1)))
    assert torch.equal(out[2], torch.rot90(x[2], 3, (-2, -1)))


def test_missing_weights_name_the_model_the_tag_and_where_to_put_them(monkeypatch, tmp_path):
    monkeypatch.setattr(clipmodels, "try_to_load_from_cache", lambda *a, **k: None)
    with pytest.raises(MissingAssetError) as err:
        clipmodels.load_pretrained("RN50", "openai", None, download=False)
    message = str(err.value)
    assert "RN50/openai" in message and "models--timm--resnet50_clip.openai" in message and "task.checkpoint" in message
    assert "\n" not in message
    with pytest.raises(MissingAssetError, match="does not exist"):
        clipmodels.load_pretrained("RN50", "openai", str(tmp_path / "nope.pt"), download=False)
    with pytest.raises(ConfigError, match="no pretrained tag 'nosuch' for RN50; known tags: openai, yfcc15m, cc12m"):
        clipmodels.load_pretrained("RN50", "nosuch", None, download=False)


def run_cli(*args, **env):
    import os

    return subprocess.run([sys.executable, "run.py", "task=clip", "logger=none", "fast=true", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env={**os.environ, **env})


def test_cli_missing_weights_and_data_are_one_line_exit_2(tmp_path):
    result = run_cli("method=equitune", "task.weights=pretrained", HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_OFFLINE="1")
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: CLIP weights RN50/openai are not cached: put them at ")
    result = run_cli("method=equitune", "task.dataset=cifar100", f"task.data_root={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip().startswith(
        f"error: CIFAR-100 not found in {tmp_path}: expected torchvision's cifar-100-python/ "
        "(`python run.py data cifar100` fetches it); set task.data_root")
    assert result.stderr.strip().count("\n") == 0
    assert imagesets.missing("imagenetv2", tmp_path).startswith(f"ImageNet-V2 not found in {tmp_path}")


def test_auto_takes_the_real_weights_where_open_clip_can_download_them_else_the_stand_in(tmp_path, monkeypatch, capsys):
    from equi.tasks.context import RunContext

    task = compose_config(["task=clip", "fast=true"]).task
    loaded = []
    monkeypatch.setattr(cliptask, "cached_weights", lambda *a: None)
    monkeypatch.setattr(cliptask, "load_pretrained", lambda *a: loaded.append(a) or (clipmodels.random_clip("RN50"), "hub"))
    monkeypatch.setattr(cliptask, "standin", lambda task, ctx: ("standin", "standin (trained)", None))
    ctx = RunContext(torch.device("cpu"), None, tmp_path, tmp_path, tmp_path, download=True)
    monkeypatch.setattr(cliptask, "weights_reachable", lambda *a: True)
    assert cliptask.load_clip(task, ctx)[1] == "RN50/openai (hub)" and loaded == [("RN50", "openai", None, True)]
    monkeypatch.setattr(cliptask, "weights_reachable", lambda *a: False)  # offline: the stand-in, with its note
    assert cliptask.load_clip(task, ctx)[1] == "standin (trained)"
    assert "(their host does not answer); using the offline stand-in" in capsys.readouterr().out
    ctx.download = False
    assert cliptask.load_clip(task, ctx)[1] == "standin (trained)" and len(loaded) == 1
    assert "(download=false); using the offline stand-in" in capsys.readouterr().out


def fast_run(*overrides):
    cfg = compose_config(["task=clip", "fast=true", "logger=none", *overrides])
    run_dir = cfg.paths.outputs + f"/runs/{'-'.join(overrides).replace('=', '_').replace('.', '_')}"
    return execute(cfg, run_dir)["metrics"]


def test_fast_runs_of_every_method_share_the_stand_in_and_its_head(fixture_data, tmp_path):
    results = {m: fast_run(f"method={m}") for m in ("vanilla", "equitune", "equizero", "lambda")}
    cache = tmp_path / "outputs" / "cache" / "clip"
    assert len(list(cache.glob("standin-*.pt"))) == 1 and len(list((cache / "heads").glob("*.pt"))) == 1
    assert results["vanilla"]["weights"].startswith("standin (trained")
    assert all(r["weights"].startswith("standin (cache") for m, r in results.items() if m != "vanilla")
    assert {r["test_images"] for r in results.values()} == {40}
    assert results["lambda"]["logit_scale"] == 1.0 and 0 <= results["lambda"]["upright_weight"] <= 1
    assert len(results["lambda"]["weight_examples"]["weights"][0]) == 4
    figures = tmp_path / "figures"
    assert clip_figures.main(["offline", "--runs", str(tmp_path / "outputs" / "runs"), "--include-fast",
                              "--out", str(figures), "--tables", str(figures)]) == 0
    assert sorted(p.name for p in figures.iterdir()) == ["offline.md", "offline.png", "offline_lambda.png"]
    table = (figures / "offline.md").read_text()
    assert "| standin | rot90 | equizero |" in table and "standin, rot90: vanilla drops:" in table


def test_fast_finetuning_moves_the_image_tower_and_records_the_curve(fixture_data):
    metrics = fast_run("method=equizero", "task.finetune.steps=4", "task.logit_scale=model")
    assert list(metrics["curve"]) == ["0", "2", "4"] and metrics["finetune_lr"] == 1.0e-5
    assert metrics["logit_scale"] > 1
    metrics = fast_run("method=lambda", "task.finetune.steps=2", "task.transform=flip")
    assert list(metrics["curve"]) == ["0", "2"] and metrics["group"] == "flip"
    assert len(metrics["weight_examples"]["weights"][0]) == 2


def test_paper_targets_stop_before_any_work_naming_what_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(clipmodels, "try_to_load_from_cache", lambda *a, **k: None)
    assert check_assets.main(["--models", "RN50,ViT-B-32", "--dataset", "cifar100", f"paths.data={tmp_path}"]) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("error: CLIP RN50/openai weights not found at ") and "\n" not in message
    assert "also missing: CLIP ViT-B-32/openai weights, cifar100: CIFAR-100 (Krizhevsky 2009);" in message
    monkeypatch.setattr(clip_asset_rows, "weights_reachable", lambda *a: True)  # a network: the weights are fetchable
    monkeypatch.setattr(catalog, "fetchable", lambda name, root: name != "imagenetv2")
    assert check_assets.main(["--models", "RN50", "--dataset", "cifar100", "download=true", f"paths.data={tmp_path}"]) == 0
    assert check_assets.main(["--models", "RN50", "--dataset", "cifar100", "download=false", f"paths.data={tmp_path}"]) == 2
    assert check_assets.main(["--models", "RN50", "--dataset", "imagenetv2", "download=true",
                             f"paths.data={tmp_path}"]) == 2


def test_cifar100_release_loads_the_first_images_of_each_class(tmp_path, monkeypatch):
    import pickle

    import numpy as np
    from torchvision import datasets

    folder = tmp_path / imagesets.CIFAR100_FOLDER
    folder.mkdir()
    rows = np.random.default_rng(0).integers(0, 255, (6, 3072), dtype=np.uint8)
    for name in ("train", "test"):
        with open(folder / name, "wb") as f:
            pickle.dump({"data": rows, "fine_labels": [0, 1, 2, 0, 1, 2]}, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"class{i}" for i in range(100)]}, f)
    monkeypatch.setattr(datasets.cifar, "check_integrity", lambda *a: True)  # our files lack the release's md5s
    images, labels = imagesets.load("cifar100", tmp_path, "test", 1, 32, None).tensors
    assert labels.tolist() == [0, 1, 2] and images.dtype == torch.uint8
    assert torch.equal(images[1], torch.from_numpy(rows[1].reshape(3, 32, 32)))


def test_stand_in_trains_the_caption_rows_as_the_full_token_table_would(monkeypatch):
    """`caption_rows` swaps in only the token rows the captions use: every other parameter and every
    used row ends where training with the whole 49,408-row table ends; the unused rows keep their start."""
    settings = OmegaConf.create({"seed": 0, "epochs": 2, "examples_per_epoch": None, "batch_size": 8, "lr": 1e-2,
                                 "weight_decay": 0.05, "augment": "flip", "precision": "fp32", "model": TINY["resnet"]})
    images = torch.randint(0, 256, (24, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(24) % 10
    torch.manual_seed(settings.seed)
    start = clipmodels.standin_clip(TINY["resnet"]).token_embedding.weight.detach().clone()
    compact = clip_standin.train(settings, images, labels, torch.device("cpu")).state_dict()

    @contextmanager
    def whole_table(model, captions):
        yield captions

    monkeypatch.setattr(clip_standin, "caption_rows", whole_table)
    full = clip_standin.train(settings, images, labels, torch.device("cpu")).state_dict()

    tokenize = clipmodels.tokenizer_for(clipmodels.standin_clip(TINY["resnet"]))
    used = tokenize([t.format(c) for c in CIFAR10_CLASSES for t in CIFAR_TEMPLATES]).unique()
    unused = torch.ones(len(start), dtype=torch.bool)
    unused[used] = False
    assert len(used) < 100 and compact.keys() == full.keys()
    for name in full:
        if name != "token_embedding.weight":
            torch.testing.assert_close(compact[name], full[name], atol=1e-6, rtol=0, msg=name)
    torch.testing.assert_close(compact["token_embedding.weight"][used], full["token_embedding.weight"][used],
                               atol=1e-6, rtol=0)
    assert torch.equal(compact["token_embedding.weight"][unused], start[unused])
    assert not torch.equal(compact["token_embedding.weight"][used], start[used])


def test_stand_in_precision_auto_is_decided_before_it_names_the_file(monkeypatch, tmp_path):
    """auto → bf16 where the CPU has oneDNN's bf16 kernels, float32 where bf16 would be emulated;
    the stand-in's file (and so its runs' inputs) is named by what ran."""
    cpu = torch.device("cpu")
    settings = compose_config(["task=clip"]).task.standin
    assert settings.precision == "auto"
    for native, ran in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda native=native: native)
        assert clip_standin.resolved(settings, cpu).precision == ran
        assert clip_standin.resolved(OmegaConf.merge(settings, {"precision": "fp32"}), cpu).precision == "fp32"
    names = {p: checkpoint_path(tmp_path, "clip", "standin", OmegaConf.merge(settings, {"precision": p}), 0, ".pt").name
             for p in ("bf16", "fp32")}
    assert names["bf16"] != names["fp32"]
