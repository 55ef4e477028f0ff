"""label_issues' rankings: every score a run computed, the rank-average ensembles, the default
and its flags."""

import numpy as np
import pytest

from common.errors import ConfigError
from importance_learning import experiment
from importance_learning import label_issues
from importance_learning.configs import custom


def test_rank_average_is_the_mean_normalised_rank_and_top_k_flags_the_lowest():
  a = np.array([0.5, 0.1, 0.9, 0.3])        # ranks 2 0 3 1 (its argsort is 1 3 0 2)
  b = np.array([20.0, -5.0, 0.0, 10.0])     # ranks 3 0 1 2
  np.testing.assert_allclose(label_issues.rank_average(a, b), [5 / 6, 0, 2 / 3, 1 / 2])
  np.testing.assert_allclose(label_issues.rank_average(a), [2 / 3, 0, 1, 1 / 3])
  assert label_issues.top_k(label_issues.rank_average(a, b), 2).tolist() == \
      [False, True, False, True]
  # Ties keep the data's order: of the three equal scores, the first two are the lowest.
  assert label_issues.top_k(np.array([0.2, 0.2, 0.1, 0.2]), 3).tolist() == \
      [True, True, True, False]


def test_rankings_offer_every_score_and_ensembles_flag_as_many_as_cleanlab_trusted():
  rng = np.random.default_rng(0)
  n = 50
  method, cl, clt = rng.random(n), rng.random(n), rng.random(n)
  clt_flags = clt < 0.2
  offered = label_issues.rankings("penalty", method, method <= 0.5,
                                  {"confident_learning": (cl, cl < 0.3),
                                   "confident_learning_trusted": (clt, clt_flags)})
  assert list(offered) == ["penalty", "confident_learning", "confident_learning_trusted",
                           "rank_average(cl, cl_trusted)", "rank_average(penalty, cl_trusted)",
                           "rank_average(penalty, cl, cl_trusted)"]
  assert offered["penalty"][1].tolist() == (method <= 0.5).tolist()
  score, flags = offered["rank_average(cl, cl_trusted)"]
  np.testing.assert_allclose(score, label_issues.rank_average(cl, clt))
  for name in ("rank_average(cl, cl_trusted)", "rank_average(penalty, cl, cl_trusted)"):
    s, f = offered[name]
    assert f.sum() == clt_flags.sum()
    assert s[f].max() <= s[~f].min()           # the flagged are the lowest of the ensemble
  # Without the trusted variant there is no ensemble.
  alone = label_issues.rankings("l2rw", method, method <= 0.5,
                                {"confident_learning": (cl, cl < 0.3)})
  assert list(alone) == ["l2rw", "confident_learning"]


def test_auto_picks_the_default_when_offered_and_the_method_otherwise():
  offered = label_issues.rankings("penalty", np.arange(4.0), np.zeros(4, bool))
  assert label_issues.choose(offered, "auto", "penalty") == "penalty"
  full = label_issues.rankings("penalty", np.arange(4.0), np.zeros(4, bool),
                               {v: (np.arange(4.0), np.zeros(4, bool))
                                for v in experiment.CL_VARIANTS})
  assert label_issues.choose(full, "auto", "penalty") == "rank_average(penalty, cl_trusted)"
  assert label_issues.choose(full, "auto", "penalty", per_step=True) == \
      "rank_average(cl, cl_trusted)"
  assert label_issues.choose(full, "confident_learning", "penalty") == "confident_learning"
  notes = []
  assert label_issues.choose(offered, "confident_learning_trusted", "penalty",
                             notes.append) == "penalty"
  assert len(notes) == 1 and "ranking as 'auto'" in notes[0]


def test_a_ranking_no_run_offers_is_refused_before_any_work():
  c = custom.get_config()
  c.custom.train = __file__          # validate() stops at the rule first
  c.label_issues_ranking = "cleanlab"
  with pytest.raises(ConfigError, match=r"label_issues_ranking='cleanlab' is not .* choose "
                                        r"one of \['auto', 'penalty', 'confident_learning'"):
    experiment.validate(c)
  c.label_issues_ranking = "confident_learning"
  c.baselines.run = ()
  with pytest.raises(ConfigError, match="without confident learning"):
    experiment.validate(c)


def test_table_writes_every_score_column_and_the_given_flags():
  scores = np.array([0.3, 0.1, 0.2])
  probs = np.eye(2)[[0, 1, 0]] * 0.8 + 0.1
  rows = label_issues.table(scores, np.array([0, 1, 1]), probs, ("a", "b"), None,
                            flagged=np.array([False, True, False]),
                            columns={"penalty": [0.7, 0.2, 0.4], "confident_learning":
                                     [0.5, 0.05, 0.6]})
  assert [r["id"] for r in rows] == ["1", "2", "0"]
  assert [r["flagged"] for r in rows] == [True, False, False]
  assert [r["penalty"] for r in rows] == [0.2, 0.4, 0.7]
  assert [r["confident_learning"] for r in rows] == [0.05, 0.6, 0.5]
