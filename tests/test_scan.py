"""SCAN: the loader against the release files, the word swaps, equivariant decoding."""

import pytest
import torch

from equi.config import compose_config
from equi.data import scan as data
from equi.errors import ConfigError, MissingAssetError
from equi.experiment import execute
from equi.models.gseq2seq import Tied, orbit_index
from equi.tasks import scan
from equi.weighting import LambdaNet

RELEASE_COUNTS = {  # lines of the official release files (train, test)
    "simple": (16728, 4182),
    "add_jump": (14670, 7706),
    "add_turn_left": (21890, 1208),
    "around_right": (15225, 4476),
    "length": (16990, 3920),
}


@pytest.mark.parametrize("split", RELEASE_COUNTS)
def test_loader_counts_match_the_release(shared_data, split):
    train, test = data.load_split(shared_data / "scan", split)
    assert (len(train), len(test)) == RELEASE_COUNTS[split]
    src, tgt = test.tensors()
    assert (src[:, 0] != data.PAD_ID).all() and ((tgt == data.EOS_OUT).sum(1) == 1).all()
    assert max(len(a) for a in train.actions + test.actions) + 1 <= 50  # fits max_len


def test_hold_out_is_20_percent_fixed_and_disjoint(shared_data):
    train, _ = data.load_split(shared_data / "scan", "add_jump")
    part, val = data.hold_out(train, 0.2, seed=0)
    again, val_again = data.hold_out(train, 0.2, seed=0)
    assert (len(part), len(val)) == (11736, 2934)
    assert val.commands == val_again.commands and part.commands == again.commands
    assert len(part) + len(val) == len(train)
    assert data.hold_out(train, 0.2, seed=1)[1].commands != val.commands


def test_add_jump_keeps_jump_out_of_compositions(shared_data):
    train, test = data.load_split(shared_data / "scan", "add_jump")
    assert {" ".join(c) for c in train.commands if "jump" in c} == {"jump"}
    assert all("jump" in c for c in test.commands)


def swap(split):
    return scan.swap_group(compose_config(["task=scan", f"task.split={split}"]).task)


@pytest.mark.parametrize("split,words,actions", [
    ("add_jump", ("jump", "run"), ("I_JUMP", "I_RUN")),
    ("around_right", ("left", "right"), ("I_TURN_LEFT", "I_TURN_RIGHT")),
])
def test_swaps_map_the_vocabulary_as_stated_and_are_involutions(split, words, actions):
    group = swap(split)
    commands = torch.arange(len(data.COMMANDS))
    moved = group.act_input(1, commands).tolist()
    a, b = (data.COMMANDS.index(w) for w in words)
    assert moved[a] == b and moved[b] == a
    assert [i for i, j in enumerate(moved) if i != j] == sorted([a, b])
    ids = torch.arange(len(data.ACTIONS))
    out = group.act_output_ids(1, ids).tolist()
    a, b = (data.ACTIONS.index(w) for w in actions)
    assert out[a] == b and [i for i, j in enumerate(out) if i != j] == sorted([a, b])
    assert group.act_input(1, group.act_input(1, commands)).tolist() == commands.tolist()


@pytest.mark.parametrize("split", ["add_jump", "around_right"])
def test_the_swap_is_a_symmetry_of_scan(shared_data, split):
    """Swapping the words of any SCAN command and the actions of its output gives a SCAN pair."""
    everything = data.parse(shared_data / "scan" / "tasks.txt")
    pairs = {(" ".join(c), " ".join(a)) for c, a in zip(everything.commands, everything.actions)}
    group = swap(split)
    src, tgt = everything.tensors()
    src, tgt = group.act_input(1, src), group.act_output_ids(1, tgt)
    for row in range(0, len(everything), 7):
        command = " ".join(data.COMMANDS[i] for i in src[row].tolist() if i > data.EOS_IN)
        assert (command, " ".join(data.decode(tgt[row]))) in pairs


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("method", ["equitune", "equizero", "lambda"])
def test_equivariant_decoding_swaps_the_decoded_actions(shared_data, cell, method):
    """Transforming the command transforms the decoded action sequence (random weights)."""
    torch.manual_seed(0)
    task = compose_config(["task=scan", f"task.cell={cell}", "task.hidden=16"]).task
    model = scan.new_model(task).eval()
    group = scan.swap_group(task)
    lam = LambdaNet(16, hidden=8) if method == "lambda" else None
    decode = scan.decoder(compose_config([f"method={method}"]).method, model, group, task, lam)
    _, test = data.load_split(shared_data / "scan", "add_jump")
    src, _ = test.subset(range(0, 7706, 97)).tensors()
    with torch.no_grad():
        out = decode(src).argmax(-1)
        swapped = decode(group.act_input(1, src)).argmax(-1)
    assert torch.equal(swapped, group.act_output_ids(1, out))
    vanilla = scan.GreedyDecoder(model, data.EOS_OUT)
    with torch.no_grad():
        assert not torch.equal(vanilla(group.act_input(1, src)).argmax(-1), group.act_output_ids(1, vanilla(src).argmax(-1)))


def test_missing_data_is_one_line_naming_the_path(tmp_path):
    with pytest.raises(MissingAssetError) as err:
        data.load_split(tmp_path, "add_jump")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"SCAN file add_prim_split/tasks_train_addprim_jump.txt not found under {tmp_path}")


def test_unknown_words_and_splits_are_named():
    with pytest.raises(ValueError, match="word 'fly' is not in the SCAN vocabulary"):
        data.encode([["fly"]], data.COMMANDS, data.EOS_IN)
    with pytest.raises(ConfigError, match="unknown SCAN split 'add_walk'"):
        data.load_split(".", "add_walk")


def test_fast_runs_share_the_cached_pretrained_model(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("EQUI_DATA", str(shared_data))
    records = [execute(compose_config(["task=scan", f"method={m}", "fast=true", "logger=none"]), tmp_path / m)
               for m in ("vanilla", "equitune", "equizero", "lambda")]
    assert [r["metrics"]["weights"] for r in records] == ["trained", "cache", "cache", "cache"]
    assert all(0.0 <= r["metrics"]["test_accuracy"] <= 100.0 for r in records)


def test_teacher_forced_pairs_are_acted_on_consistently(shared_data):
    from equi import EquivariantWrapper, ProxyArgmin, Uniform, check_equivariance, group_pairs
    from equi.sequence import CommandSummary, TeacherForced, pair_group
    from equi.weighting import Featurized

    torch.manual_seed(0)
    task = compose_config(["task=scan", "task.hidden=16"]).task
    group = scan.swap_group(task)
    _, test = data.load_split(shared_data / "scan", "add_jump")
    src, tgt = test.subset(range(0, 7706, 331)).tensors()
    pairs, pg = torch.cat([src, tgt], 1), pair_group(group, src.shape[1])
    for a in pg.elements:
        for b in pg.elements:
            assert torch.equal(pg.act_input(a, pg.act_input(b, pairs)), pg.act_input(pg.compose(a, b), pairs))
    model = scan.new_model(task).eval()
    with torch.no_grad():  # λ sees the same summary under teacher forcing as when decoding
        assert torch.equal(CommandSummary(model, src.shape[1])(pairs), model.start(src)[1])
    lam = Featurized(LambdaNet(16, hidden=8), CommandSummary(model, src.shape[1]))
    for weighting, log_probs in ((Uniform(), False), (ProxyArgmin("neg_max_prob"), True), (lam, False)):
        wrapped = EquivariantWrapper(TeacherForced(model, src.shape[1], log_probs), pg, weighting)
        check_equivariance(wrapped, pairs, group_pairs(pg, invariant=False), atol=1e-5)


def test_finetuning_runs_through_each_method_and_keeps_the_cache(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("EQUI_DATA", str(shared_data))
    base = ["task=scan", "fast=true", "logger=none"]
    execute(compose_config(base + ["method=vanilla"]), tmp_path / "zero-shot")
    cache = next((tmp_path / "outputs" / "cache" / "scan").glob("*.pt"))
    before = cache.read_bytes()
    for method in ("vanilla", "equitune", "equizero", "lambda"):
        record = execute(compose_config(base + [f"method={method}", "task.finetune.examples=64"]), tmp_path / method)
        assert record["metrics"]["finetune_examples"] == 64 and record["metrics"]["weights"] == "cache"
    assert cache.read_bytes() == before


def test_lambda_stage_trains_lambda_and_leaves_the_model_alone(shared_data):
    torch.manual_seed(0)
    cfg = compose_config(["task=scan", "method=lambda", "task.hidden=16", "task.lambda_stage.examples=64"])
    task = cfg.task
    model, group = scan.new_model(task).eval(), scan.swap_group(task)
    train, _ = data.load_split(shared_data / "scan", "add_jump")
    lam = LambdaNet(16, hidden=8)
    model_before = {k: v.clone() for k, v in model.state_dict().items()}
    lam_before = [p.clone() for p in lam.parameters()]
    model.requires_grad_(False)
    scan.train_through(cfg.method, model, group, train.subset(range(200)), task, task.lambda_stage, lam, 0, "cpu", "λ", lam)
    assert all(torch.equal(v, model_before[k]) for k, v in model.state_dict().items())
    assert all(not torch.equal(p, q) for p, q in zip(lam.parameters(), lam_before))
    with pytest.raises(ValueError, match="trained λ-network"):
        scan.decoder(cfg.method, model, group, task)


def test_orbit_index_ties_exactly_the_entries_the_group_maps_onto_each_other():
    swap = torch.tensor([[0, 1, 2], [1, 0, 2]])  # Z2 swapping indices 0 and 1
    orbits = orbit_index(swap, swap)
    assert orbits.shape == (3, 3) and int(orbits.max()) + 1 == 5  # {00,11} {01,10} {02,12} {20,21} {22}
    assert orbits[0, 0] == orbits[1, 1] and orbits[0, 1] == orbits[1, 0] and orbits[0, 2] == orbits[1, 2]
    assert len({int(orbits[0, 0]), int(orbits[0, 1]), int(orbits[0, 2]), int(orbits[2, 0]), int(orbits[2, 2])}) == 5
    tied = Tied(orbits)
    weight = torch.randn(3, 3)
    free = tied.right_inverse(weight)
    assert torch.allclose(free[orbits[0, 0]], (weight[0, 0] + weight[1, 1]) / 2)
    assert torch.equal(tied(tied.right_inverse(tied(free))), tied(free))


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_g_seq2seq_is_equivariant_by_construction(shared_data, cell):
    """Gordon et al.'s G-models: swapped command → swapped actions, with no operator around them,
    before and after a training step (the tying survives optimisation)."""
    torch.manual_seed(0)
    task = compose_config(["task=scan", f"task.cell={cell}", "task.hidden=16", "task.architecture=gseq2seq"]).task
    model, group = scan.new_model(task), scan.swap_group(task)
    plain = sum(p.numel() for p in scan.new_model(compose_config(["task=scan", f"task.cell={cell}", "task.hidden=32"]).task).parameters())
    assert sum(p.numel() for p in model.parameters()) < plain / 1.8  # |G| = 2 times fewer free weights
    _, test = data.load_split(shared_data / "scan", "add_jump")
    src, tgt = test.subset(range(0, 7706, 97)).tensors()
    decode = scan.GreedyDecoder(model, data.EOS_OUT)
    for _ in range(2):
        model.eval()
        with torch.no_grad():
            out = decode(src).argmax(-1)
            assert torch.equal(decode(group.act_input(1, src)).argmax(-1), group.act_output_ids(1, out))
            logits = model(src, tgt, True)
            swapped = model(group.act_input(1, src), group.act_output_ids(1, tgt), True)
            assert torch.allclose(swapped, group.act_output(1, logits), atol=1e-5)
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        torch.nn.functional.cross_entropy(model(src, tgt, True).flatten(0, 1), tgt.flatten(), ignore_index=0).backward()
        opt.step()


def test_g_model_runs_and_caches_under_its_own_name(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("EQUI_DATA", str(shared_data))
    base = ["task=scan", "fast=true", "logger=none", "method=vanilla"]
    execute(compose_config(base), tmp_path / "plain")
    record = execute(compose_config(base + ["task.architecture=gseq2seq"]), tmp_path / "g")
    assert record["metrics"]["weights"] == "trained"
    names = sorted(p.name.split("-seed")[0] for p in (tmp_path / "outputs" / "cache" / "scan").glob("*.pt"))
    assert names == ["glstm-add_jump", "lstm-add_jump"]
    with pytest.raises(ConfigError, match="unknown task.architecture 'g2s'"):
        execute(compose_config(base + ["task.architecture=g2s"]), tmp_path / "bad")
