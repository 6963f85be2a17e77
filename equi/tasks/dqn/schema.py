"""The rules of the dqn task's config keys (conf/task/dqn.yaml); see equi.schema."""

from __future__ import annotations

from ...schema import (BATCH, FRACTION, MAX_STEPS, RATE, SAMPLES, SCORE_PROXIES, STEPS, TEXT, WIDTH, Choice, ListOf,
                       Number, Rule, block, up_to)

DQN_SETTINGS = {"learning_rate": RATE, "batch_size": BATCH, "buffer_size": STEPS, "learning_starts": up_to(MAX_STEPS, low=0),
                "gamma": FRACTION, "target_update_interval": STEPS, "train_freq": STEPS,
                "gradient_steps": up_to(MAX_STEPS, low=-1),  # -1: as many as environment steps
                "exploration_fraction": Number(low=0, high=1, above=True), "exploration_final_eps": FRACTION}

RULES: dict[str, Rule] = {
    "env": Choice(lambda cfg: cfg.task.envs), "eval_episodes": SAMPLES,
    "default_proxy": Choice(SCORE_PROXIES),
    "envs.*.id": TEXT, "envs.*.timesteps": STEPS, "envs.*.net_arch": ListOf(WIDTH),  # []: a linear Q-network
    **block("envs.*.dqn", DQN_SETTINGS),
}
