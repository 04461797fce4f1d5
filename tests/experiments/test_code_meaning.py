import jax
import numpy as np

from experiments import code_meaning
from hrl_internal.envs import gridworld


def test_direction_is_the_move_that_goes_there():
    g = 7
    centre = 3 * g + 3
    for action, (dr, dc) in enumerate(gridworld.ACTION_DELTAS):
        for k in (1, 2):
            to = centre + k * (dr * g + dc)
            assert code_meaning.direction(np.asarray(centre), np.asarray(to), g) == action
    # The larger axis decides: two rows down and one column left is down.
    assert code_meaning.direction(np.asarray(centre), np.asarray(centre + 2 * g - 1), g) == 2


def test_content_labels_and_a_code_that_carries_the_move(tiny):
    rows = tiny["test_rows"]
    labels = code_meaning.content_labels(rows, tiny["env"].grid_size)
    mask = np.asarray(rows.mask, bool)
    toward, _ = labels["direction"]
    held, _ = labels["direction_at_segment_start"]
    subgoals, segments = np.asarray(rows.subgoals), np.asarray(rows.segments)
    new = np.ones_like(mask)
    new[:, 1:] = (segments[:, 1:] != segments[:, :-1]) | (subgoals[:, 1:] != subgoals[:, :-1])
    # Held over each segment, equal to the per-step direction at the segment's first step.
    np.testing.assert_array_equal(held[new], toward[new])
    assert np.all(held[:, 1:][~new[:, 1:]] == held[:, :-1][~new[:, 1:]])
    # The expert mostly moves towards the colour it heads to.
    moves, _ = labels["move"]
    assert np.mean((moves == toward)[mask]) > 0.6

    # Codes that are the expert's move, one-hot plus noise, read the move and not the colour.
    z = np.eye(4)[moves] + 0.1 * np.random.default_rng(0).normal(size=moves.shape + (4,))
    read = code_meaning.code_content(jax.random.PRNGKey(0), z, rows, tiny["env"].grid_size)
    assert read["move"]["probe_accuracy"] > 0.95
    assert read["colour"]["probe_accuracy"] < read["colour"]["probe_majority"] + 0.2


def test_edit_form_tells_a_fixed_vector_from_an_edit_of_the_stream():
    from hrl_internal.models import metacontroller as mc
    config = mc.MetacontrollerConfig(d_model=8, latent_dim=3, history_dim=4, embed_dim=4,
                                     encoder_hidden=8, decoder_hidden=5, rank=4, switch_hidden=8,
                                     edit_centre=True)
    params = mc.init(jax.random.PRNGKey(0), config)
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(16, 3))
    # Streams that are one vector plus a little noise: each code's edit is (almost) fixed.
    e = 5.0 + 0.01 * rng.normal(size=(64, 8))
    fixed = code_meaning.edit_form(params, codes, e)
    assert fixed["constancy"] > 0.99 and fixed["edit_over_e"] > 0
    # Centred on the same streams' mean, every code's edit averages to zero over them.
    params["decoder"]["centre"] = jax.numpy.asarray(e.mean(0))
    centred = code_meaning.edit_form(params, codes, e)
    assert centred["constancy"] < 0.01 and centred["constancy_between_codes"] < 0.01
