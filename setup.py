"""Where a non-editable install puts the families (the metadata is in pyproject.toml).

The repository keeps one folder per experiment family (common, importance_learning, few_shot,
poisoning, curriculum, synthetic) and every module imports them by those names. Installing them
as top-level packages would put generic names such as ``common`` straight into site-packages,
where they could overwrite, or be removed together with, another distribution's ``common``.
So ``pip install .`` puts them one level down, in ``site-packages/bilevel_data/``, and installs
``bilevel_data.pth``, which appends that folder to ``sys.path`` at start-up: the modules keep
their names (``from common import bilevel``) and own no top-level name in site-packages but
``bilevel_data``. ``pip install -e .`` copies nothing: setuptools maps the names to the
checkout.
"""

import pathlib
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

PREFIX = "bilevel_data"


class BuildPyUnderPrefix(build_py):
  """build_py, then (non-editable builds only) the packages moved under PREFIX/ plus the .pth
  that puts PREFIX/ on sys.path; the wheel holds build_lib as it is."""

  def run(self):
    super().run()
    if getattr(self, "editable_mode", False):
      return
    lib = pathlib.Path(self.build_lib)
    target = lib / PREFIX
    target.mkdir(exist_ok=True)
    for top in sorted({p.split(".")[0] for p in self.packages}):
      if (lib / top).is_dir():
        if (target / top).exists():
          shutil.rmtree(target / top)
        shutil.move(str(lib / top), str(target / top))
    (lib / f"{PREFIX}.pth").write_text(f"{PREFIX}\n")


setup(cmdclass={"build_py": BuildPyUnderPrefix})
