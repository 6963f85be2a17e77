"""Symmetric RL: the dynamics commute with each symmetry, and the wrapped policies are equivariant."""

import gymnasium
import numpy as np
import pytest
import torch
from stable_baselines3 import DQN

from equi import envs  # noqa: F401 - registers the Gridworld
from equi import methods
from equi.config import compose_config
from equi.envs import gridworld
from equi.experiment import execute
from equi.schema import check
from equi.tasks.dqn import figures as dqn_figures
from equi.tasks.dqn import runner as dqn

RNG = np.random.default_rng(0)


def step_from(env_id: str, state: np.ndarray, action: int):
    env = gymnasium.make(env_id).unwrapped
    env.reset(seed=0)
    env.state = state.copy()
    obs, reward, terminated, _, _ = env.step(action)
    return obs, reward, terminated


def test_cartpole_dynamics_commute_with_reflection():
    group = dqn.symmetry("cartpole")
    for _ in range(200):
        s = RNG.uniform([-2, -2, -0.2, -2], [2, 2, 0.2, 2])
        a = int(RNG.integers(2))
        obs, reward, done = step_from("CartPole-v1", s, a)
        g_obs, g_reward, g_done = step_from("CartPole-v1", -s, int(group.act_action(1, torch.tensor(a))))
        np.testing.assert_allclose(g_obs, group.act_input(1, torch.as_tensor(obs)).numpy(), rtol=0, atol=1e-6)
        assert (g_reward, g_done) == (reward, done)


def test_acrobot_dynamics_commute_with_reflection():
    group = dqn.symmetry("acrobot")
    for _ in range(100):
        s = RNG.uniform([-np.pi, -np.pi, -4, -9], [np.pi, np.pi, 4, 9])
        a = int(RNG.integers(3))
        obs, reward, done = step_from("Acrobot-v1", s, a)
        g_obs, g_reward, g_done = step_from("Acrobot-v1", -s, int(group.act_action(1, torch.tensor(a))))
        np.testing.assert_allclose(g_obs, group.act_input(1, torch.as_tensor(obs)).numpy(), rtol=0, atol=1e-5)
        assert (g_reward, g_done) == (reward, done)


def quarter_turn(offset: np.ndarray) -> np.ndarray:
    """Rotate a (row, col) offset counter-clockwise, as torch.rot90 rotates the image."""
    return np.array([-offset[1], offset[0]])


def test_gridworld_rendering_rotates_with_the_world():
    group = dqn.symmetry("gridworld")
    for row in range(-3, 4):
        for col in range(-3, 4):
            d = np.array([row, col])
            rotated = group.act_input(1, torch.as_tensor(gridworld.render(d)).unsqueeze(0))[0].numpy()
            np.testing.assert_array_equal(rotated, gridworld.render(quarter_turn(d)))


def test_gridworld_dynamics_commute_with_rotations():
    group = dqn.symmetry("gridworld")
    g_action = lambda a: int(group.act_action(1, torch.tensor(a)))  # noqa: E731
    checked = 0
    for row in range(-3, 4):
        for col in range(-3, 4):
            d = np.array([row, col])
            if not d.any():
                continue
            for action in range(5):
                for prey_move in range(5):
                    nxt, reward, caught = gridworld.transition(d, action, prey_move)
                    g_nxt, g_reward, g_caught = gridworld.transition(quarter_turn(d), g_action(action), g_action(prey_move))
                    np.testing.assert_array_equal(g_nxt, quarter_turn(nxt))
                    assert (g_reward, g_caught) == (reward, caught)
                    checked += 1
    assert checked == 48 * 25


def test_gridworld_episode_rules():
    env = gymnasium.make("equi/GridWorld-v0")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (1, 21, 21) and env.action_space.n == 5
    assert env.spec.max_episode_steps == 100
    nxt, reward, caught = gridworld.transition(np.array([-1, 0]), 1, 3)  # prey just above; move up
    assert caught and reward == 1.0 and not nxt.any()
    nxt, reward, caught = gridworld.transition(np.array([-3, 0]), 3, 0)  # move down: prey wraps to +3
    assert (nxt.tolist(), reward, caught) == ([3, 0], -0.1, False)


@pytest.mark.parametrize("env", ["cartpole", "acrobot", "gridworld"])
@pytest.mark.parametrize("method", ["equitune", "equizero", "vanilla"])
def test_policy_chooses_g_a_at_g_s(env, method):
    spec = compose_config(["task=dqn"]).task.envs[env]
    torch.manual_seed(0)
    q_net = DQN("MlpPolicy", gymnasium.make(spec.id), policy_kwargs={"net_arch": [32, 32]}, seed=0, device="cpu").q_net.eval()
    group = dqn.symmetry(env)
    policy = methods.wrap(compose_config(["task=dqn", f"method={method}"]).method, q_net, group=group,
                              invariant=False, default_proxy="neg_softmax_value")
    space = gymnasium.make(spec.id).observation_space
    states = torch.as_tensor(np.stack([space.sample() for _ in range(64)]))
    with torch.no_grad():
        actions = policy(states).argmax(-1)
        agree = [(policy(group.act_input(g, states)).argmax(-1) == group.act_action(g, actions)).all().item()
                 for g in group.elements]
    if method == "vanilla":
        assert not all(agree)  # a plain DQN is not equivariant: the test has teeth
    else:
        assert all(agree)


def test_fast_runs_share_the_cached_pretrained_dqn(tmp_path):
    first = execute(compose_config(["task=dqn", "task.env=cartpole", "method=vanilla", "fast=true", "logger=none"]), tmp_path / "a")
    second = execute(compose_config(["task=dqn", "task.env=cartpole", "method=equizero", "fast=true", "logger=none"]), tmp_path / "b")
    assert (first["metrics"]["weights"], second["metrics"]["weights"]) == ("trained", "cache")
    assert first["metrics"]["episodes"] == 2
    assert first["metrics"]["q_parameters"] == 4 * 256 + 256 + 256 * 256 + 256 + 256 * 2 + 2


def test_unknown_env_is_named_and_every_env_has_its_symmetry():
    assert check(compose_config(["task=dqn", "task.env=pong"])) == (
        "unknown task.env 'pong'; choose one of: cartpole, acrobot, gridworld")
    assert set(dqn.GROUPS) == set(compose_config(["task=dqn"]).task.envs)


def test_fig2_keeps_the_configured_budget_and_fig2_budget_draws_every_one(tmp_path):
    budgets_seen = {}
    for method in ("vanilla", "equitune", "equizero"):
        for steps in (300, 600):  # 300: fast mode's configured budget
            record = execute(compose_config(["task=dqn", "task.env=cartpole", f"method={method}", "fast=true",
                                             "logger=none", f"task.fast.envs.cartpole.timesteps={steps}"]),
                             tmp_path / "runs" / f"{method}{steps}")
            budgets_seen[(method, steps)] = dqn_figures.at_configured_budget(record)
    assert budgets_seen == {(m, s): s == 300 for m in ("vanilla", "equitune", "equizero") for s in (300, 600)}
    plain, budgets = tmp_path / "fig2.md", tmp_path / "budget.md"
    common = ["--runs", str(tmp_path / "runs"), "--include-fast", "--png", str(tmp_path / "f.png")]
    assert dqn_figures.main([*common, "--table", str(plain)]) == 0
    assert len(plain.read_text().splitlines()[2:]) == 1
    assert dqn_figures.main([*common, "--budget", "--table", str(budgets)]) == 0
    rows = budgets.read_text().splitlines()[2:]
    assert [r.split(" | ")[1] for r in rows] == ["300", "600"] and all(r.split(" | ")[5] == "1" for r in rows)
