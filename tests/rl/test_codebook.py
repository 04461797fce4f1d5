import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hrl_internal.rl import codebook


def test_kmeans_finds_separated_clusters_whatever_their_sizes():
    centres = np.array([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0], [-4.0, -4.0, 0.0]])
    sizes = [300, 40, 150, 10]  # a small cluster must still get its own centroid
    rng = np.random.default_rng(0)
    points = np.concatenate([c + 0.1 * rng.standard_normal((n, 3)) for c, n in zip(centres, sizes)])
    found = np.asarray(codebook.kmeans(jax.random.PRNGKey(0), jnp.asarray(points, jnp.float32), 4))
    distance = np.linalg.norm(centres[:, None] - found[None], axis=-1)  # [true, found]
    assert np.all(distance.min(axis=1) < 0.1)  # every true centre has a centroid on it
    assert sorted(distance.argmin(axis=1)) == [0, 1, 2, 3]  # and a centroid of its own


def test_kmeans_refuses_fewer_points_than_codes():
    with pytest.raises(ValueError, match="at least k=5"):
        codebook.kmeans(jax.random.PRNGKey(0), jnp.zeros((3, 2)), 5)


def test_lookup_returns_the_chosen_row():
    book = jnp.arange(12.0).reshape(4, 3)
    np.testing.assert_array_equal(codebook.lookup(book, jax.nn.one_hot(jnp.array([2, 0]), 4)),
                                  np.asarray(book)[[2, 0]])


def test_switch_mask_marks_episode_starts_and_open_gates_within_the_mask():
    episode = np.array([[0, 0, 0, 1, 1, -1]])
    mask = episode >= 0
    beta = np.array([[0.1, 0.7, 0.2, 0.0, 0.5, 0.9]])
    np.testing.assert_array_equal(codebook.switch_mask(beta, episode, mask, 0.5),
                                  [[True, True, False, True, True, False]])


def test_purity_is_one_for_codes_that_name_labels_and_the_majority_share_otherwise():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 400)
    named = np.eye(4)[labels] * 5 + 0.1 * rng.standard_normal((400, 4))
    assert codebook.purity(named, labels, np.eye(4) * 5) == 1.0
    ignored = rng.standard_normal((400, 4))  # codes that carry no label
    book = np.asarray(codebook.kmeans(jax.random.PRNGKey(0), jnp.asarray(ignored, jnp.float32), 4))
    majority = np.bincount(labels).max() / len(labels)
    assert codebook.purity(ignored, labels, book) < majority + 0.1
