"""task.protocol=paper: the paper's CNN protocol on cached trunk features, and its bug switches."""

import pytest
import torch
from omegaconf import OmegaConf

import equi
from equi.config import compose_config, run_key
from equi.data import cifar
from equi.experiment import execute
from equi.groups import image
from equi.methods import wrap
from equi.models.cnn import PaperHead, cifar_model, conv_trunk, imagenet_model
from equi.proxy import max_prob
from equi.schema import check
from equi.tasks.cnn import figures as cnn_figures
from equi.tasks.cnn import paper as cnn_paper
from equi.tasks.cnn import toolkit as cnn

FOLDER = "cifar10"


@pytest.mark.parametrize("build,shape", [(lambda: cifar_model("resnet18"), (256, 1, 1)),
                                         (lambda: cifar_model("alexnet"), (128, 4, 4)),
                                         (lambda: imagenet_model("resnet18", input_size=64), (512, 1, 1)),
                                         (lambda: imagenet_model("alexnet", input_size=64), (256, 6, 6))])
def test_the_trunk_is_what_the_paper_code_keeps_and_shares_the_weights(build, shape):
    model = build().eval()
    trunk = conv_trunk(model)
    assert trunk(torch.randn(2, 3, 32, 32)).shape == (2, *shape)
    model_params = {id(p) for p in model.backbone.parameters()}
    assert {id(p) for p in trunk.parameters()} <= model_params  # no copy: one set of frozen weights


def test_imagenet_weights_get_imagenet_statistics():
    assert imagenet_model("resnet18", input_size=64).stats == cifar.IMAGENET_STATS
    assert cifar_model("alexnet").stats == cifar.STATS != cifar.IMAGENET_STATS
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    assert torch.allclose(cifar.normalize(x, cifar.IMAGENET_STATS)[0, :, 0, 0],
                          torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225]))


@pytest.mark.parametrize("arch", ["resnet18", "alexnet"])
def test_cached_features_equal_a_direct_forward_pass(fixture_data, arch):
    images, _ = cifar.load(fixture_data / FOLDER, "test", per_class=1)
    model = cifar_model(arch).eval()
    trunk = conv_trunk(model)
    views = cnn_paper.orbit_features(trunk, images, model.stats, 4, "cpu", "test")
    assert views.shape[:2] == (10, 4) and views.dtype == torch.float16
    x = cifar.normalize(images, model.stats)
    with torch.no_grad():
        for k in range(4):
            direct = trunk(torch.rot90(x, k, dims=(-2, -1)))
            assert torch.allclose(views[:, k].float(), direct, atol=2e-3, rtol=2e-3)
        head = PaperHead(*views.shape[2:3], views[0, 0].numel() // views.shape[2])
        assert torch.allclose(head(cnn_paper.FirstView()(views)), head(trunk(x)), atol=1e-2)
    turned = cnn_paper.orbit_features(trunk, torch.rot90(images, 1, dims=(-2, -1)), model.stats, 4, "cpu", "test")
    assert torch.allclose(turned.float(), image.rot90_views().act_input(1, views).float(), atol=2e-3, rtol=2e-3)


METHODS = {"vanilla": {"name": "vanilla"}, "equitune": {"name": "equitune"},
           "equizero": {"name": "equizero", "proxy": "entropy", "straight_through": True},
           "lambda": {"name": "lambda", "lambda_hidden": 100, "lambda_layers": 2, "lambda_residual": False}}


def paper_net(method: dict, channels=512, positions=1):
    return wrap(OmegaConf.create(method), PaperHead(channels, positions), group=image.rot90_views(), invariant=True,
                encoder=cnn_paper.FirstView(), feature_dim=channels * positions,
                lambda_net=cnn_paper.lambda_network(channels * positions, 100, 0.5))


@pytest.mark.parametrize("method", ["equitune", "equizero", "lambda"])
def test_the_heads_are_invariant_to_turning_the_image(method):
    views = torch.randn(6, 4, 256, 6, 6)
    net = paper_net(METHODS[method], 256, 36).eval()
    equi.check_equivariance(net, views, equi.group_pairs(image.rot90_views(), invariant=True), atol=1e-4)
    with pytest.raises(AssertionError, match="not equivariant under rot90_views"):
        equi.check_equivariance(paper_net(METHODS["vanilla"], 256, 36).eval(), views,
                                equi.group_pairs(image.rot90_views(), invariant=True), atol=1e-4)


def test_the_paper_heads_have_the_paper_codes_parameter_counts():
    # ResNet-18: Linear(1, 1) + Linear(512, 10); λ: 512 → 100 → 100 → 1
    assert sum(p.numel() for p in paper_net(METHODS["equitune"]).parameters()) == 2 + 5130
    assert sum(p.numel() for p in paper_net(METHODS["lambda"]).parameters()) == 2 + 5130 + 51300 + 10100 + 101
    # AlexNet: Linear(36, 1) + Linear(256, 10); λ: 9216 → 100 → 100 → 1
    assert sum(p.numel() for p in paper_net(METHODS["lambda"], 256, 36).parameters()) == \
        37 + 2570 + 921700 + 10100 + 101
    relus = [m for m in cnn_paper.lambda_network(512, 100, 0.5) if isinstance(m, torch.nn.ReLU)]
    assert len(relus) == 1  # the paper's WeightNet has no ReLU after its second layer


def test_argmin_of_max_prob_keeps_the_least_confident_view():
    outputs = torch.tensor([[[4.0, 0.0]], [[1.0, 0.0]], [[9.0, 0.0]], [[2.0, 0.0]]])  # (|G|, B, classes)
    net = paper_net({"name": "equizero", "proxy": "neg_max_prob", "straight_through": True})
    assert net.weighting(outputs, outputs)[:, 0].tolist() == [0, 0, 1, 0]  # the most confident view
    net.weighting.proxy = max_prob
    assert net.weighting(outputs, outputs)[:, 0].tolist() == [0, 1, 0, 0]  # the paper code's: the least


def fast(*overrides):
    return compose_config(["task=cnn", "task.protocol=paper", "fast=true", "logger=none", "task.weights=random",
                           "task.model=alexnet", *overrides])


def test_every_method_trains_a_head_on_cached_features(tmp_path, fixture_data):
    records = {m: execute(fast(f"method={m}"), tmp_path / m)["metrics"] for m in ("vanilla", "equitune", "equizero",
                                                                                 "lambda")}
    assert records["vanilla"]["features"] == "computed"
    assert {r["features"] for m, r in records.items() if m != "vanilla"} == {"cache"}
    for r in records.values():
        assert r["protocol"] == "paper" and len(r["curve"]) == 1 and r["test_images"] == 50
        assert r["test_split"] == "test" and r["bugs"] == []
    assert records["equitune"]["trainable_parameters"] == 17 + 1290  # Linear(16, 1) + Linear(128, 10)
    assert records["lambda"]["trainable_parameters"] == 17 + 1290 + 204900 + 10100 + 101
    assert records["equizero"]["proxy"] == "entropy" and records["lambda"]["upright_weight"] > 0
    execute(fast("method=equizero", "method.proxy=neg_max_prob", "task.paper_protocol.bugs.argmin_max_prob=true"),
            tmp_path / "bug")
    table = tmp_path / "table.md"
    assert cnn_figures.main(["--runs", str(tmp_path), "--protocol", "paper", "--include-fast", "--out", str(tmp_path),
                             "--table", str(table)]) == 0
    rows = table.read_text().splitlines()[2:]
    assert len(rows) == 5 and (tmp_path / "fig_cnn_paper.png").stat().st_size > 0
    assert any("equitune" in r and "71.0 → 75.5" in r for r in rows)  # the paper's AlexNet reading beside ours
    assert any("the paper code's bug" in r for r in rows)
    assert cnn_figures.main(["--runs", str(tmp_path), "--protocol", "ours", "--include-fast", "--out", str(tmp_path),
                             "--table", str(table)]) == 1  # no runs of our protocol there


def test_each_bug_switch_changes_what_it_names(tmp_path, fixture_data, monkeypatch):
    loaded, proxies = [], []
    original_load, original_train = cnn.load, cnn_paper.train_heads
    monkeypatch.setattr(cnn, "load", lambda task, ctx, split, per_class: loaded.append(split)
                        or original_load(task, ctx, split, per_class))
    monkeypatch.setattr(cnn_paper, "train_heads", lambda net, *a, **k: proxies.append(net.weighting.proxy)
                        or original_train(net, *a, **k))
    plain = execute(fast("method=equizero", "method.proxy=neg_max_prob"), tmp_path / "a")["metrics"]
    from_train = execute(fast("method=equizero", "method.proxy=neg_max_prob",
                              "task.paper_protocol.bugs.test_from_train=true"), tmp_path / "b")["metrics"]
    argmin = execute(fast("method=equizero", "method.proxy=neg_max_prob",
                          "task.paper_protocol.bugs.argmin_max_prob=true"), tmp_path / "c")["metrics"]
    entropy = execute(fast("method=equizero", "method.proxy=entropy",
                           "task.paper_protocol.bugs.argmin_max_prob=true"), tmp_path / "d")["metrics"]
    assert loaded == ["train", "test", "train", "train", "train", "test", "train", "test"]
    assert (plain["test_split"], from_train["test_split"], argmin["test_split"]) == ("test", "train", "test")
    assert proxies[0] is proxies[1] and proxies[2] is max_prob and proxies[3] is not max_prob
    assert (plain["proxy"], from_train["proxy"], argmin["proxy"], entropy["proxy"]) == \
        ("neg_max_prob", "neg_max_prob", "max_prob", "entropy")  # the switch leaves other proxies alone
    assert (from_train["bugs"], argmin["bugs"]) == (["test_from_train"], ["argmin_max_prob"])


def test_our_protocol_keeps_its_run_keys_and_the_paper_protocol_gets_its_own():
    cfg = compose_config(["task=cnn", "method=equitune"])
    before = OmegaConf.to_container(cfg)
    del before["task"]["protocol"], before["task"]["paper_protocol"]  # a config from before the protocol keys
    del before["task"]["fast"]["paper_protocol"]
    assert run_key(OmegaConf.create(before)) == run_key(cfg)
    paper = run_key(compose_config(["task=cnn", "method=equitune", "task.protocol=paper"]))
    assert paper != run_key(cfg)
    assert run_key(compose_config(["task=cnn", "method=equitune", "task.protocol=paper",
                                   "task.paper_protocol.bugs.test_from_train=true"])) != paper
    assert run_key(compose_config(["task=cnn", "method=equitune", "task.paper_protocol.epochs=3"])) == run_key(cfg)


def test_bad_protocol_settings_are_one_line():
    assert check(compose_config(["task=cnn", "task.protocol=papr"])).startswith(
        "unknown task.protocol 'papr'; choose one of: ours, paper")
    assert "task.paper_protocol.lambda_dropout" in check(compose_config(["task=cnn",
                                                                         "task.paper_protocol.lambda_dropout=1"]))
