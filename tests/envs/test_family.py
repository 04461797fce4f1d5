import jax
import jax.numpy as jnp
import numpy as np

from hrl_internal.envs import ant_pinpad, family, gridworld


def test_gridworld_through_the_family_interface_matches_the_module():
    env = gridworld.EnvParams(task_set="0-1-2-3")
    key = jax.random.PRNGKey(0)
    obs, direct = gridworld.reset(key, env)
    state = family.reset(key, env)
    np.testing.assert_array_equal(family.observe(state, env), obs)
    for action in (0, 1, 2, 3, 1):
        _, direct, reward, done, _ = gridworld.step(direct, jnp.array(action), env)
        state, r, d = family.step(state, jnp.array(action), env)
        assert float(r) == float(reward) and bool(d) == bool(done)
        np.testing.assert_array_equal(family.observe(state, env), gridworld.observe(direct, env))
    assert int(family.current_subgoal(state, env)) == int(gridworld.current_subgoal(direct))


def test_the_family_dispatches_on_the_parameters_type():
    grid, ant = gridworld.EnvParams(task_set="posttrain"), ant_pinpad.AntEnvParams(task_set="posttrain")
    assert not family.is_ant(grid) and family.is_ant(ant)
    assert family.colours_per_subgoal(grid) == 2 and family.colours_per_subgoal(ant) == 1


def test_colour_here_names_the_colour_under_the_agent_or_none():
    grid = gridworld.EnvParams(task_set="0-1-2-3")
    state = family.reset(jax.random.PRNGKey(3), grid)
    free = next(c for c in range(grid.num_cells)
                if c not in set(np.asarray(state.object_cells)) | set(np.asarray(state.wall_cells)))
    assert int(family.colour_here(state.replace(agent_cell=jnp.int32(free)), grid)) == -1
    on_two = state.replace(agent_cell=state.object_cells[2])
    assert int(family.colour_here(on_two, grid)) == 2
    ant = ant_pinpad.AntEnvParams(task_set="posttrain")
    ant_state = family.reset(jax.random.PRNGKey(3), ant)
    assert int(family.colour_here(ant_state.replace(cell=ant_state.object_cells[1]), ant)) == 1
