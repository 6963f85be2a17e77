"""Pretrained DQNs made equivariant (paper Figure 2): act greedily on Σ_g λ g⁻¹·Q(g·s).

vanilla acts on Q(s); equitune on the group average; equizero on the view whose
softmax-normalised Q has the largest entry, i.e. the (g, a) of the paper's rule, taking
action g⁻¹·a. The Q-network is stable-baselines3's, wrapped by the shared operator.
"""

from __future__ import annotations

import time

import gymnasium
import numpy as np
import torch
from omegaconf import DictConfig
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import BaseCallback
from tqdm import tqdm

from ... import envs  # noqa: F401 - registers equi/GridWorld-v0
from ... import methods
from ...cache import checkpoint_path, load_cached, save_atomically
from ..context import RunContext
from ...groups import StateActionGroup, grid_rotations, reflection

GROUPS = {
    "cartpole": lambda: reflection([-1.0, -1.0, -1.0, -1.0], [1, 0], name="cartpole_reflection"),
    "acrobot": lambda: reflection([1.0, -1.0, 1.0, -1.0, -1.0, -1.0], [2, 1, 0], name="acrobot_reflection"),
    "gridworld": lambda: grid_rotations([0, 4, 1, 2, 3]),
}


def symmetry(env: str) -> StateActionGroup:
    return GROUPS[env]()  # task.env is one of task.envs (equi.schema); tests keep GROUPS in step with them


class TqdmCallback(BaseCallback):
    """A progress bar over environment steps while SB3 trains."""

    def __init__(self, total: int, desc: str):
        super().__init__()
        self.bar = tqdm(total=total, desc=desc, unit="step")

    def _on_step(self) -> bool:
        self.bar.update(1)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


def pretrained(env: str, spec: DictConfig, seed: int, ctx: RunContext) -> tuple[DQN, str]:
    """The DQN for (env, settings, seed): from the cache under outputs/, else trained and cached."""
    path = checkpoint_path(ctx.cache_dir, "dqn", env, spec, seed, ".zip")
    model = load_cached(path, lambda p: DQN.load(p, device=ctx.device))
    if model is not None:
        return model, "cache"
    model = DQN("MlpPolicy", gymnasium.make(spec.id), policy_kwargs={"net_arch": list(spec.net_arch)},
                seed=seed, device=ctx.device, **spec.dqn)
    model.learn(spec.timesteps, callback=TqdmCallback(spec.timesteps, f"pretrain {env} seed {seed}"))
    save_atomically(path, model.save)
    return model, "trained"


@torch.no_grad()
def evaluate(q_function, env_id: str, episodes: int, seed: int, device, desc: str) -> list[float]:
    """Greedy returns over `episodes` episodes with fixed reset seeds (the same for every method)."""
    env = gymnasium.make(env_id)
    returns = []
    for episode in tqdm(range(episodes), desc=desc, unit="episode"):
        obs, _ = env.reset(seed=1_000_000 + 1_000 * seed + episode)
        total, done = 0.0, False
        while not done:
            q = q_function(torch.as_tensor(obs, device=device).unsqueeze(0))
            obs, reward, terminated, truncated, _ = env.step(int(q.argmax(-1)))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return returns


def run(cfg: DictConfig, ctx: RunContext) -> dict:
    task = cfg.task
    group = symmetry(task.env)
    spec = task.envs[task.env]
    start = time.perf_counter()
    model, source = pretrained(task.env, spec, cfg.seed, ctx)
    pretrain_s = time.perf_counter() - start
    q_net = model.q_net.eval()
    policy = methods.wrap(cfg.method, q_net, group=group, invariant=False, default_proxy=task.default_proxy)
    returns = evaluate(policy, spec.id, task.eval_episodes, cfg.seed, ctx.device, f"{cfg.method.name} on {task.env}")
    metrics = {
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "episodes": len(returns),
        "q_network": str(list(spec.net_arch)),
        "q_parameters": sum(p.numel() for p in q_net.parameters()),
        "weights": source,
        "pretrain_s": round(pretrain_s, 1),
    }
    ctx.logger.log({"mean_return": metrics["mean_return"]})
    return metrics
