"""What every family's ``run.py`` does after parsing its flags: run, report, and turn errors in
what the user asked for into one clear line instead of a traceback."""

import sys

from absl import app
from absl import logging

from common import config_checks
from common import runner
from common.data.splits import DataNotFoundError

# Errors whose message says what to do: printed without a traceback, exit status 1.
USER_ERRORS = (config_checks.ConfigError, DataNotFoundError, runner.NonFiniteError,
               runner.ConfigMismatchError)


def run_experiment(argv, experiment, config, workdir, footer=None):
  """``experiment.run(config, workdir)`` then print ``experiment.summary(results)``.

  A run stopped by ``max_steps_per_invocation`` prints how to continue and exits 0.
  """
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  try:
    results = experiment.run(config, workdir)
  except runner.Interrupted as stop:
    print(stop)
    return
  except USER_ERRORS as e:
    sys.exit(f"error ({type(e).__name__}): {e}")
  print("\n" + experiment.summary(results))
  if footer:
    print(footer)
