"""Group axioms checked against the actual actions, and each action's stated mapping."""

import pytest
import torch

from equi import groups as G

IMAGE = torch.randn(2, 3, 5, 5)


def finite_groups():
    vocab = G.vocabulary_cycles(["walk", "jump", "run", "look"], [["jump", "run"]],
                                ["I_WALK", "I_JUMP", "I_RUN", "I_LOOK", "<eos>"], [["I_JUMP", "I_RUN"]])
    three = G.vocabulary_cycles(["a", "b", "c", "d"], [["a", "b", "c"]])
    return [
        (G.rot90(), IMAGE, IMAGE),
        (G.flip(), IMAGE, IMAGE),
        (G.rot90_flip(), IMAGE, IMAGE),
        (G.identity(), IMAGE, IMAGE),
        (vocab, torch.randint(0, 4, (3, 6)), torch.randn(3, 6, 5)),
        (three, torch.randint(0, 4, (3, 6)), torch.randn(3, 6, 4)),
        (G.reflection([-1.0] * 4, [1, 0]), torch.randn(3, 4), torch.randn(3, 2)),
        (G.grid_rotations([0, 4, 1, 2, 3]), torch.randn(3, 1, 7, 7), torch.randn(3, 5)),
        (G.SO2(invariant_output=False).finite_subgroup(6), torch.randn(3, 2, 2), torch.randn(3, 1, 2)),
    ]


@pytest.mark.parametrize("group,x,y", finite_groups(), ids=lambda v: getattr(v, "name", ""))
def test_cayley_table_matches_actions(group, x, y):
    for act, t in ((group.act_input, x), (group.act_output, y)):
        for a in group.elements:
            for b in group.elements:
                torch.testing.assert_close(act(a, act(b, t)), act(group.compose(a, b), t), rtol=0, atol=1e-5)
            torch.testing.assert_close(act(group.inverse(a), act(a, t)), t, rtol=0, atol=1e-5)


@pytest.mark.parametrize("group,x,y", finite_groups(), ids=lambda v: getattr(v, "name", ""))
def test_elements_act_differently(group, x, y):
    """A group whose elements all act alike (e.g. a broken action) would pass the axioms trivially."""
    seen = [group.act_input(g, x) for g in group.elements]
    for i in range(len(seen)):
        for j in range(i):
            assert not torch.equal(seen[i], seen[j]), f"elements {j} and {i} of {group.name} act the same"


def test_orders():
    assert [G.rot90().order, G.flip().order, G.rot90_flip().order, G.identity().order] == [4, 2, 8, 1]
    assert G.vocabulary_cycles(list("abcde"), [["a", "b"], ["c", "d", "e"]]).order == 6


def test_flip_is_a_mirror_not_a_rotation():
    x = torch.arange(4.0).reshape(1, 1, 2, 2)  # [[0, 1], [2, 3]]
    assert G.flip().act_input(1, x).flatten().tolist() == [1, 0, 3, 2]
    assert G.rot90().act_input(2, x).flatten().tolist() == [3, 2, 1, 0]


def test_rot90_is_counter_clockwise_quarter_turn():
    x = torch.arange(4.0).reshape(1, 1, 2, 2)  # [[0, 1], [2, 3]] -> [[1, 3], [0, 2]]
    assert G.rot90().act_input(1, x).flatten().tolist() == [1, 3, 0, 2]


def test_vocabulary_swap_maps_words_as_stated_and_is_an_involution():
    vin, vout = ["walk", "jump", "run", "left"], ["I_WALK", "I_JUMP", "I_RUN", "I_TURN_LEFT"]
    group = G.vocabulary_cycles(vin, [["jump", "run"]], vout, [["I_JUMP", "I_RUN"]])
    tokens = torch.tensor([[0, 1, 2, 3]])
    assert group.act_input(1, tokens).tolist() == [[0, 2, 1, 3]]
    assert group.act_output_ids(1, torch.tensor([1, 2, 0])).tolist() == [2, 1, 0]
    scores = torch.tensor([[1.0, 2.0, 3.0, 4.0]])  # score of I_JUMP moves to I_RUN and back
    assert group.act_output(1, scores).tolist() == [[1.0, 3.0, 2.0, 4.0]]
    assert group.order == 2 and group.inverse(1) == 1


def test_three_way_cycle():
    group = G.vocabulary_cycles(["a", "b", "c", "x"], [["a", "b", "c"]])
    assert group.order == 3
    assert group.act_input(1, torch.tensor([0, 1, 2, 3])).tolist() == [1, 2, 0, 3]
    assert group.act_input(2, torch.tensor([0, 1, 2, 3])).tolist() == [2, 0, 1, 3]
    assert group.inverse(1) == 2


@pytest.mark.parametrize(
    "cycles,message",
    [([["jump", "fly"]], "word 'fly' is not in the vocabulary"), ([["jump"]], "at least two words"),
     ([["jump", "run"], ["run", "walk"]], "more than one cycle")],
)
def test_vocabulary_errors(cycles, message):
    with pytest.raises(ValueError, match=message):
        G.vocabulary_cycles(["walk", "jump", "run"], cycles)


def test_token_outside_vocabulary_is_rejected():
    group = G.vocabulary_cycles(["a", "b", "c"], [["a", "b"]])
    with pytest.raises(ValueError, match="token id 7 is outside the vocabulary of size 3"):
        group.orbit(torch.tensor([[0, 7]]))
    with pytest.raises(ValueError, match="integer tensor"):
        group.orbit(torch.tensor([[0.0, 1.0]]))


def test_rot90_rejects_non_square_images_but_flip_accepts_them():
    with pytest.raises(ValueError, match="rot90 needs square images, got H×W = 4×6"):
        G.rot90().orbit(torch.randn(1, 3, 4, 6))
    assert G.flip().orbit(torch.randn(1, 3, 4, 6)).shape == (2, 3, 4, 6)


def test_empty_batch_is_rejected():
    with pytest.raises(ValueError, match="non-empty batch"):
        G.rot90().orbit(torch.randn(0, 3, 4, 4))


def test_reflection_acts_on_states_and_actions():
    acrobot = G.reflection([1, -1, 1, -1, -1, -1], [2, 1, 0])
    s = torch.tensor([[0.5, 0.25, 0.75, 1.5, 1.0, 2.0]])
    assert acrobot.act_input(1, s).tolist() == [[0.5, -0.25, 0.75, -1.5, -1.0, -2.0]]
    assert acrobot.act_action(1, torch.tensor([0, 1, 2])).tolist() == [2, 1, 0]
    with pytest.raises(ValueError, match="6 coordinates"):
        acrobot.orbit(torch.randn(2, 4))


def test_so2_rotation_and_canonicalizer():
    so2 = G.SO2()
    x = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    y = so2.act_input(torch.tensor([torch.pi / 2]), x)
    torch.testing.assert_close(y, torch.tensor([[[0.0, 1.0], [-2.0, 0.0]]]), atol=1e-6, rtol=0)
    angle = G.VectorAngle(0)
    x = torch.randn(8, 2, 2)
    theta = torch.rand(8) * 6
    diff = torch.remainder(angle(so2.act_input(theta, x)) - angle(x) - theta + torch.pi, 2 * torch.pi) - torch.pi
    assert diff.abs().max() < 1e-5
    with pytest.raises(ValueError, match="last axis must have size 2"):
        so2.act_input(torch.zeros(1), torch.randn(1, 3))


def test_three_way_cycle_moves_scores_along_the_cycle():
    """The score of word v moves to word g·v (a→b→c→a), not the other way round."""
    group = G.vocabulary_cycles(["a", "b", "c", "x"], [["a", "b", "c"]])
    scores = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    assert group.act_output(1, scores).tolist() == [[30.0, 10.0, 20.0, 40.0]]


def test_input_and_output_actions_agree_on_a_copy_model():
    """A model that copies each input token is equivariant exactly when the two actions agree."""
    import equi

    group = G.vocabulary_cycles(["a", "b", "c", "d", "e"], [["a", "b", "c"], ["d", "e"]])
    copy = lambda tokens: torch.nn.functional.one_hot(tokens, 5).float()  # noqa: E731
    equi.check_equivariance(copy, torch.randint(0, 5, (4, 7)), equi.group_pairs(group, invariant=False), atol=0)


@pytest.mark.parametrize("group,x,y", finite_groups(), ids=lambda v: getattr(v, "name", ""))
def test_acting_on_stacked_outputs_is_acting_on_each(group, x, y):
    """act_output_stacked (one gather for permuted scores) against act_output block by block, for
    element lists in turn, so that an index kept from the last call cannot go stale."""
    order = group.order
    for elements in (list(group.elements), [order - 1] * 3, list(reversed(group.elements)), list(group.elements)):
        ys = torch.stack([torch.randn_like(y) for _ in elements])
        expected = torch.stack([group.act_output(g, ys[i]) for i, g in enumerate(elements)])
        assert torch.equal(group.act_output_stacked(elements, ys), expected)


def test_inverses_are_read_off_the_table():
    for group, _, _ in finite_groups():
        assert [group.compose(g, group.inverse(g)) for g in group.elements] == [0] * group.order
