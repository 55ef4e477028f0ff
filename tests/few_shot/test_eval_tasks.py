"""Which test tasks each few-shot evaluation uses (few_shot/experiment.py, ``eval_fresh_tasks``).

The original draws new test tasks at every evaluation; here they are drawn from (eval_seed,
the meta-iteration of the evaluation), so they differ between evaluations, are the same for
the same meta-iteration, and survive a resume. ``eval_fresh_tasks=False`` reuses one fixed set.
The runs below go through ``experiment.run`` in this process and record every meta-batch the
test sampler hands out.
"""

import hashlib

import numpy as np
import pytest

from common.data import episodes as episodelib
from common.errors import Interrupted
from few_shot import experiment
from few_shot.configs import omniglot
from tests.few_shot.test_run import _omniglot_npz

SEED, EVAL_SEED = 0, 12345


def _digest(ep):
  """One hash of everything a meta-batch of tasks holds (classes, images, labels)."""
  h = hashlib.sha256()
  for a in (ep.classes, ep.support_x, ep.support_y, ep.query_x, ep.query_y):
    h.update(np.ascontiguousarray(a).tobytes())
  return h.hexdigest()


def _sampler(seed=EVAL_SEED):
  images = np.random.default_rng(0).random((12, 6, 4, 4, 1)).astype(np.float32)
  return episodelib.EpisodeSampler(images, num_ways=3, num_shots=1, num_queries=2,
                                   meta_batch_size=2, seed=seed)


def _evaluation(sampler, step, fresh, batches=3):
  return [_digest(sampler.sample(i))
          for i in experiment.eval_episode_indices(step, batches, fresh)]


def test_fresh_indices_differ_between_steps_and_repeat_for_the_same_step():
  s = _sampler()
  at_1000, at_2000 = _evaluation(s, 1000, True), _evaluation(s, 2000, True)
  assert not set(at_1000) & set(at_2000)
  assert _evaluation(_sampler(), 1000, True) == at_1000         # a new sampler, same key
  assert list(experiment.eval_episode_indices(7, 3, True)) == [21, 22, 23]


def test_fixed_indices_are_the_same_at_every_step():
  s = _sampler()
  assert _evaluation(s, 1000, False) == _evaluation(s, 2000, False) == _evaluation(s, 5001, False)
  assert list(experiment.eval_episode_indices(7, 3, False)) == [0, 1, 2]
  with pytest.raises(ValueError):
    experiment.eval_episode_indices(-1, 3)


# -- through experiment.run ------------------------------------------------------------------


@pytest.fixture
def recorded(monkeypatch):
  """The digests of the test sampler's meta-batches (the sampler seeded with eval_seed), in the
  order the run asks for them."""
  out = []
  original = episodelib.EpisodeSampler.sample

  def sample(self, iteration):
    ep = original(self, iteration)
    if self.seed == EVAL_SEED:
      out.append(_digest(ep))
    return ep

  monkeypatch.setattr(episodelib.EpisodeSampler, "sample", sample)
  return out


def _config(data, fresh, meta_iterations=5, eval_every=2, max_steps=0):
  """5-way 1-shot tiny: meta-batch 2, 4 test tasks (2 test meta-batches per evaluation)."""
  c = omniglot.get_config("5way,1shot,tiny")
  c.data_dir = str(data)
  c.meta_iterations, c.eval_every = meta_iterations, eval_every
  c.eval_fresh_tasks = fresh
  c.runner.max_steps_per_invocation = max_steps
  assert (c.seed, c.eval_seed, c.eval_tasks // c.meta_batch) == (SEED, EVAL_SEED, 2)
  return c


def _run(config, workdir, recorded):
  """Run (or resume) and return the digests of each evaluation it made, 2 meta-batches each."""
  start = len(recorded)
  try:
    experiment.run(config, workdir, log=lambda *_: None)
  except Interrupted:
    pass
  new = recorded[start:]
  assert len(new) % 2 == 0
  return [tuple(new[i:i + 2]) for i in range(0, len(new), 2)]


@pytest.mark.slow
def test_fresh_tasks_per_evaluation_resume_and_final(tmp_path, recorded):
  """5 meta-iterations, evaluated every 2: at 2 and 4, then the final one at 5 (the runner's
  epoch index of that one is 5 // 2 = 2, as for the evaluation at 4; the step keys it apart).
  Every evaluation has its own tasks; a run stopped after 3 meta-iterations and resumed makes
  the same evaluations on the same tasks, and re-running the finished run re-evaluates the
  final tasks."""
  data = _omniglot_npz(tmp_path / "omniglot")
  straight = _run(_config(data, True), tmp_path / "straight", recorded)
  assert len(straight) == 3 and len(set(straight)) == 3
  assert not set(sum(straight, ())) & set(_evaluation(_sampler_like_run(data), 0, False, 2))

  resumed = _run(_config(data, True, max_steps=3), tmp_path / "resumed", recorded)
  assert resumed == straight[:1]                              # stopped after step 3
  resumed += _run(_config(data, True, max_steps=3), tmp_path / "resumed", recorded)
  assert resumed == straight
  again = _run(_config(data, True, max_steps=3), tmp_path / "resumed", recorded)
  assert again == straight[-1:]                                # the finished run's final tasks


@pytest.mark.slow
def test_fixed_tasks_are_the_same_at_every_evaluation(tmp_path, recorded):
  data = _omniglot_npz(tmp_path / "omniglot")
  evaluations = _run(_config(data, False), tmp_path / "w", recorded)
  assert len(evaluations) == 3
  assert evaluations[0] == evaluations[1] == evaluations[2]
  assert list(evaluations[0]) == _evaluation(_sampler_like_run(data), 0, False, 2)


def _sampler_like_run(data):
  """The run's test sampler, built again from the same files, for the fixed set's digests."""
  from common import data as datalib  # pylint: disable=import-outside-toplevel
  c = _config(data, False)
  _, test_images, _ = datalib.load_classes(
      c.dataset, c.source, c.data_dir, image_size=c.image_size, tfds_download=False,
      resize_method=c.resize_method, cache_dir=None, images_per_class=None, log=lambda *_: None)
  return episodelib.EpisodeSampler(test_images, c.ways, c.shots, c.queries, c.meta_batch,
                                   seed=c.eval_seed)
