"""SCAN: the loader against the release files, the word swaps, equivariant decoding."""

import math

import pytest
import torch

from equi.config import compose_config
from equi.data import scan as data
from equi.errors import ConfigError, MissingAssetError
from equi.experiment import execute
from equi.models.gseq2seq import Tied, orbit_index
from equi.sequence import StepwiseEquivariantDecoder
from equi.tasks.scan import runner as scan
from equi.weighting import LambdaNet, Uniform

RELEASE_COUNTS = {  # lines of the official release files (train, test)
    "simple": (16728, 4182),
    "add_jump": (14670, 7706),
    "add_turn_left": (21890, 1208),
    "around_right": (15225, 4476),
    "length": (16990, 3920),
}


@pytest.mark.real_data("scan")
@pytest.mark.parametrize("split", RELEASE_COUNTS)
def test_loader_counts_match_the_release(real_data, split):
    train, test = data.load_split(real_data / "scan", split)
    assert (len(train), len(test)) == RELEASE_COUNTS[split]
    src, tgt = test.tensors()
    assert (src[:, 0] != data.PAD_ID).all() and ((tgt == data.EOS_OUT).sum(1) == 1).all()
    assert max(len(a) for a in train.actions + test.actions) + 1 <= 50  # fits max_len


def test_hold_out_is_20_percent_fixed_and_disjoint(fixture_data):
    train, _ = data.load_split(fixture_data / "scan", "add_jump")
    part, val = data.hold_out(train, 0.2, seed=0)
    again, val_again = data.hold_out(train, 0.2, seed=0)
    assert (len(part), len(val)) == (294, 73)  # 367 lines: every 40th of the release's 14,670
    assert val.commands == val_again.commands and part.commands == again.commands
    assert len(part) + len(val) == len(train)
    assert data.hold_out(train, 0.2, seed=1)[1].commands != val.commands


def test_add_jump_keeps_jump_out_of_compositions(fixture_data):
    train, test = data.load_split(fixture_data / "scan", "add_jump")
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


@pytest.mark.real_data("scan")
@pytest.mark.parametrize("split", ["add_jump", "around_right"])
def test_the_swap_is_a_symmetry_of_scan(real_data, split):
    """Swapping the words of any SCAN command and the actions of its output gives a SCAN pair."""
    everything = data.parse(real_data / "scan" / "tasks.txt")
    pairs = {(" ".join(c), " ".join(a)) for c, a in zip(everything.commands, everything.actions)}
    group = swap(split)
    src, tgt = everything.tensors()
    src, tgt = group.act_input(1, src), group.act_output_ids(1, tgt)
    for row in range(0, len(everything), 7):
        command = " ".join(data.COMMANDS[i] for i in src[row].tolist() if i > data.EOS_IN)
        assert (command, " ".join(data.decode(tgt[row]))) in pairs


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("method", ["equitune", "equizero", "lambda", "equitune stepwise", "lambda stepwise"])
def test_equivariant_decoding_swaps_the_decoded_actions(fixture_data, cell, method):
    """Transforming the command transforms the decoded action sequence (random weights), under
    either decoding of equitune and λ (per_view, the default, or stepwise)."""
    torch.manual_seed(0)
    task = compose_config(["task=scan", f"task.cell={cell}", "task.hidden=16"]).task
    model = scan.new_model(task).eval()
    group = scan.swap_group(task)
    name, *decoding = method.split()
    lam = LambdaNet(16, hidden=8) if name == "lambda" else None
    method_cfg = compose_config(["task=scan", f"method={name}", *(f"method.decoding={d}" for d in decoding)]).method
    decode = scan.decoder(method_cfg, model, group, task, lam)
    _, test = data.load_split(fixture_data / "scan", "add_jump")
    src, _ = test.subset(range(0, len(test), 2)).tensors()
    with torch.no_grad():
        out = decode(src).argmax(-1)
        swapped = decode(group.act_input(1, src)).argmax(-1)
    assert torch.equal(swapped, group.act_output_ids(1, out))
    vanilla = scan.GreedyDecoder(model, data.EOS_OUT)
    with torch.no_grad():
        assert not torch.equal(vanilla(group.act_input(1, src)).argmax(-1), group.act_output_ids(1, vanilla(src).argmax(-1)))


def small_scan_model(cell="lstm", *overrides):
    torch.manual_seed(0)
    task = compose_config(["task=scan", f"task.cell={cell}", "task.hidden=16", *overrides]).task
    return scan.new_model(task).eval(), scan.swap_group(task), task


def decode_alone(model, command, max_len=50):
    """The paper's EquiLSTM view, one command at a time: its log-softmax rows, fed its own greedy
    tokens, up to and including its <eos>."""
    state, _ = model.start(command[None])
    prev, rows = torch.tensor([model.sos_id]), []
    for _ in range(max_len):
        logits, state = model.step(prev, state)
        rows.append(torch.log_softmax(logits[0], -1))
        prev = rows[-1].argmax()[None]
        if prev.item() == data.EOS_OUT:
            break
    return torch.stack(rows)


def paper_average(model, group, command, weights):
    """Σ_g w_g g⁻¹·(view g's rows), each view's rows padded with zeros after its <eos>."""
    ids = torch.arange(len(data.ACTIONS))
    views = [decode_alone(model, group.act_input(g, command[None])[0]) for g in group.elements]
    length = max(len(v) for v in views)
    # view g's token g·u is token u of the original world: column u of g⁻¹·rows is column g·u of rows
    back = [torch.cat([v, v.new_zeros(length - len(v), v.shape[1])])[:, group.act_output_ids(g, ids)]
            for g, v in zip(group.elements, views)]
    return sum(w * b for w, b in zip(weights, back))


@pytest.mark.parametrize("method", ["equitune", "lambda"])
def test_per_view_decoding_is_the_papers_average_of_separately_decoded_views(fixture_data, method):
    """The default decoding of equitune and λ against a loop over commands and views written out here:
    each view decodes alone, its rows after <eos> are zeros, the rows are mapped back and averaged."""
    model, group, task = small_scan_model()
    lam = LambdaNet(16, hidden=8) if method == "lambda" else None
    decode = scan.decoder(compose_config(["task=scan", f"method={method}"]).method, model, group, task, lam)
    _, test = data.load_split(fixture_data / "scan", "add_jump")
    src, _ = test.subset(range(0, len(test), 10)).tensors()
    with torch.no_grad():
        out = decode(src)
        for row, command in enumerate(src):
            if lam is None:
                weights = [0.5, 0.5]
            else:
                summaries = torch.cat([model.start(group.act_input(g, command[None]))[1] for g in group.elements])
                weights = torch.softmax(lam.net(summaries)[:, 0], 0)
            expected = paper_average(model, group, command, weights)
            assert torch.allclose(out[row, : len(expected)], expected, atol=1e-5)
            assert not out[row, len(expected):].any()  # every view ended: no votes
            assert data.decode(out[row].argmax(-1)) == data.decode(expected.argmax(-1))


class NextTokenTable(torch.nn.Module):
    """A decoder that ignores the command: the next token's logits depend on the previous token only."""

    sos_id = data.SOS_ID

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def start(self, src):
        return None, torch.zeros(src.shape[0], 1)

    def step(self, prev, state):
        return self.logits[prev], state


def test_method_decoding_switches_equitune_between_per_view_and_stepwise():
    """From <sos> the model says I_JUMP (0.6) or I_WALK (0.4); after I_JUMP or I_RUN it ends, after
    I_WALK it says I_LOOK. Per view, each view says its I_JUMP and ends; averaged back, I_WALK wins
    step 1 and <eos> step 2. Stepwise, the average (I_JUMP .3, I_RUN .3, I_WALK .4) feeds I_WALK to
    both views, which go on to I_LOOK."""
    a = {w: data.ACTIONS.index(w) for w in data.ACTIONS}
    logits = torch.full((len(data.ACTIONS),) * 2, -20.0)
    logits[:, data.EOS_OUT] = 0.0
    logits[data.SOS_ID, data.EOS_OUT] = -20.0
    logits[data.SOS_ID, a["I_JUMP"]], logits[data.SOS_ID, a["I_WALK"]] = math.log(0.6), math.log(0.4)
    logits[a["I_WALK"], data.EOS_OUT], logits[a["I_WALK"], a["I_LOOK"]] = -20.0, 0.0
    model, task = NextTokenTable(logits), compose_config(["task=scan"]).task
    group = scan.swap_group(task)
    src = data.encode([["jump"]], data.COMMANDS, data.EOS_IN)

    def decoded(*overrides):
        method = compose_config(["task=scan", "method=equitune", *overrides]).method
        return scan.decoder(method, model, group, task)(src)

    default, per_view, stepwise = decoded(), decoded("method.decoding=per_view"), decoded("method.decoding=stepwise")
    assert torch.equal(default, per_view)  # null is per_view, the paper's
    assert torch.equal(stepwise, StepwiseEquivariantDecoder(model, group, Uniform(), data.EOS_OUT, data.PAD_ID)(src))
    assert data.decode(per_view[0].argmax(-1)) == ["I_WALK"]
    assert data.decode(stepwise[0].argmax(-1)) == ["I_WALK", "I_LOOK"]


def test_per_view_training_is_the_nll_of_the_averaged_log_softmax_teacher_forced_or_not(fixture_data):
    """Per view, the training net gives the averaged log-softmax: teacher-forced (each view fed g·y)
    or, on the other side of the coin, the per_view decode itself; stepwise averages distributions."""
    _, test = data.load_split(fixture_data / "scan", "add_jump")
    src, tgt = test.subset(range(0, len(test), 8)).tensors()
    pairs, ids = torch.cat([src, tgt], 1), torch.arange(len(data.ACTIONS))

    def net(teacher_forcing, *overrides):
        model, group, task = small_scan_model("lstm", f"task.pretrain.teacher_forcing={teacher_forcing}")
        method = compose_config(["task=scan", "method=equitune", *overrides]).method
        return scan.teacher_forced(method, model, group, src.shape[1], task, None, seed=0), model, group, task

    forced, model, group, task = net(1.0)
    with torch.no_grad():
        views = [torch.log_softmax(model(group.act_input(g, src), group.act_output_ids(g, tgt), True), -1)
                 for g in group.elements]
        expected = sum(v[..., group.act_output_ids(g, ids)] for g, v in zip(group.elements, views)) / 2
        assert torch.allclose(forced(pairs), expected, atol=1e-5)
        free = net(0.0)[0](pairs)
        decoded = scan.decoder(compose_config(["task=scan", "method=equitune"]).method, model, group, task)(src)
        steps = min(decoded.shape[1], tgt.shape[1])
        assert free.shape == expected.shape and torch.allclose(free[:, :steps], decoded[:, :steps], atol=1e-5)
        assert not free[:, steps:].any()
        stepwise = net(1.0, "method.decoding=stepwise")[0](pairs)
        averaged = sum(v.exp()[..., group.act_output_ids(g, ids)] for g, v in zip(group.elements, views)) / 2
        assert torch.allclose(stepwise, averaged, atol=1e-5)


def test_per_view_finetuning_moves_the_model(fixture_data):
    """Its loss is the NLL of the averaged log-softmax itself (a log taken of it again would be flat)."""
    cfg = compose_config(["task=scan", "method=equitune", "task.hidden=16", "task.finetune.examples=64"])
    model, group = scan.new_model(cfg.task).eval(), scan.swap_group(cfg.task)
    train, _ = data.load_split(fixture_data / "scan", "add_jump")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scan.train_through(cfg.method, model, group, train.subset(range(200)), cfg.task, cfg.task.finetune, model, 0, "cpu", "ft")
    moved = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert "out.weight" in moved and "encoder.weight_ih_l0" in moved


def test_missing_data_is_one_line_naming_the_path(tmp_path):
    with pytest.raises(MissingAssetError) as err:
        data.load_split(tmp_path, "add_jump")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"SCAN file {tmp_path}/add_prim_split/tasks_train_addprim_jump.txt is missing; run `make data`")


def test_unknown_words_and_splits_are_named():
    with pytest.raises(ValueError, match="word 'fly' is not in the SCAN vocabulary"):
        data.encode([["fly"]], data.COMMANDS, data.EOS_IN)
    with pytest.raises(ConfigError, match="unknown SCAN split 'add_walk'"):
        data.load_split(".", "add_walk")


def test_fast_runs_share_the_cached_pretrained_model(tmp_path, fixture_data, monkeypatch):
    monkeypatch.setenv("EQUI_DATA", str(fixture_data))
    runs = ["vanilla", "equitune", "equizero", "lambda", "equitune stepwise"]
    records = [execute(compose_config(["task=scan", f"method={m.split()[0]}", "fast=true", "logger=none",
                                       *(f"method.decoding={d}" for d in m.split()[1:])]), tmp_path / m.replace(" ", "-"))
               for m in runs]
    assert [r["metrics"]["weights"] for r in records] == ["trained", "cache", "cache", "cache", "cache"]
    assert all(0.0 <= r["metrics"]["test_accuracy"] <= 100.0 for r in records)


def test_teacher_forced_pairs_are_acted_on_consistently(fixture_data):
    from equi import EquivariantWrapper, ProxyArgmin, Uniform, check_equivariance, group_pairs
    from equi.sequence import CommandSummary, TeacherForced, pair_group
    from equi.weighting import Featurized

    torch.manual_seed(0)
    task = compose_config(["task=scan", "task.hidden=16"]).task
    group = scan.swap_group(task)
    _, test = data.load_split(fixture_data / "scan", "add_jump")
    src, tgt = test.subset(range(0, len(test), 8)).tensors()
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


def test_finetuning_runs_through_each_method_and_keeps_the_cache(tmp_path, fixture_data, monkeypatch):
    monkeypatch.setenv("EQUI_DATA", str(fixture_data))
    base = ["task=scan", "fast=true", "logger=none"]
    execute(compose_config(base + ["method=vanilla"]), tmp_path / "zero-shot")
    cache = next((tmp_path / "outputs" / "cache" / "scan").glob("*.pt"))
    before = cache.read_bytes()
    for method in ("vanilla", "equitune", "equizero", "lambda", "equitune stepwise", "lambda stepwise"):
        name, *decoding = method.split()
        overrides = [f"method={name}", "task.finetune.examples=64", *(f"method.decoding={d}" for d in decoding)]
        record = execute(compose_config(base + overrides), tmp_path / method.replace(" ", "-"))
        assert record["metrics"]["finetune_examples"] == 64 and record["metrics"]["weights"] == "cache"
    assert cache.read_bytes() == before


def test_lambda_stage_trains_lambda_and_leaves_the_model_alone(fixture_data):
    torch.manual_seed(0)
    cfg = compose_config(["task=scan", "method=lambda", "task.hidden=16", "task.lambda_stage.examples=64"])
    task = cfg.task
    model, group = scan.new_model(task).eval(), scan.swap_group(task)
    train, _ = data.load_split(fixture_data / "scan", "add_jump")
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
def test_g_seq2seq_is_equivariant_by_construction(fixture_data, cell):
    """Gordon et al.'s G-models: swapped command → swapped actions, with no operator around them,
    before and after a training step (the tying survives optimisation)."""
    torch.manual_seed(0)
    task = compose_config(["task=scan", f"task.cell={cell}", "task.hidden=16", "task.architecture=gseq2seq"]).task
    model, group = scan.new_model(task), scan.swap_group(task)
    plain = sum(p.numel() for p in scan.new_model(compose_config(["task=scan", f"task.cell={cell}", "task.hidden=32"]).task).parameters())
    assert sum(p.numel() for p in model.parameters()) < plain / 1.8  # |G| = 2 times fewer free weights
    _, test = data.load_split(fixture_data / "scan", "add_jump")
    src, tgt = test.subset(range(0, len(test), 2)).tensors()
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


def test_g_model_runs_and_caches_under_its_own_name(tmp_path, fixture_data, monkeypatch):
    monkeypatch.setenv("EQUI_DATA", str(fixture_data))
    base = ["task=scan", "fast=true", "logger=none", "method=vanilla"]
    execute(compose_config(base), tmp_path / "plain")
    record = execute(compose_config(base + ["task.architecture=gseq2seq"]), tmp_path / "g")
    assert record["metrics"]["weights"] == "trained"
    names = sorted(p.name.split("-seed")[0] for p in (tmp_path / "outputs" / "cache" / "scan").glob("*.pt"))
    assert names == ["glstm-add_jump", "lstm-add_jump"]
    with pytest.raises(ConfigError, match="unknown task.architecture 'g2s'"):
        execute(compose_config(base + ["task.architecture=g2s"]), tmp_path / "bad")
