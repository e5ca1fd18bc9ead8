"""rl.reward: a registered reward by name (config.REWARDS) or a user's 'module:function'.

`resolve_reward` runs when the run starts (rl.loop.run_train, the pipeline config's load), so a module
that does not import, a missing or non-callable name, or a function that cannot take (rollouts,
question, settings) is one ConfigError line before anything trains.
"""

from __future__ import annotations

import importlib
import inspect

from egrpo_jax.config import REWARD_SPEC, REWARDS, ConfigError
from egrpo_jax.errors import one_line
from egrpo_jax.rewards.api import RewardFn
from egrpo_jax.rewards.egrpo import egrpo_reward

BUILTIN: dict[str, RewardFn] = {"egrpo": egrpo_reward}
assert tuple(BUILTIN) == REWARDS, "config.REWARDS names the rewards above"


def resolve_reward(spec: str) -> RewardFn:
    """The reward function rl.reward = `spec` names."""
    if spec in BUILTIN:
        return BUILTIN[spec]
    where = f"config key rl.reward = {spec!r}"
    if not isinstance(spec, str) or REWARD_SPEC.fullmatch(spec) is None:
        raise ConfigError(f"{where}: must be one of {list(REWARDS)} or 'module:function'")
    module_name, fn_name = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # the user's module: ImportError, or whatever its top level raises
        raise ConfigError(f"{where}: cannot import {module_name} ({type(e).__name__}: {one_line(e)})") from None
    fn = getattr(module, fn_name, None)
    if fn is None:
        raise ConfigError(f"{where}: module {module_name} ({module.__file__}) has no {fn_name}")
    if not callable(fn):
        raise ConfigError(f"{where}: {module_name}.{fn_name} is a {type(fn).__name__}, not a function")
    _check_arity(fn, where)
    return fn


def _check_arity(fn, where: str) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature to read (some builtins): the first call will tell
        return
    try:
        sig.bind(None, None, None)
    except TypeError:
        raise ConfigError(f"{where}: {fn.__qualname__}{sig} must take (rollouts, question, settings)") from None
