"""The one grammar of config arguments: what follows the colon in ``--config=FILE.py:ARG``.

ARG is a comma-separated list of tokens (``:0.25,tiny``, ``:5way,1shot,approxgrad``). A token is
one of:

  a number      ``0.25``: the row's noise level (the class-imbalance row: the proportion)
  ``tiny``      a seconds-long smoke run of the same code path
  ``paper``     the paper's full length where the default is shortened for a CPU
  ``<N>way``    few-shot: N classes per task
  ``<K>shot``   few-shot: K examples per class
  a method      a registered method name the config lists (e.g. ``approxgrad``)
  a word        a switch of that config (e.g. ``cifar100``, ``joint``), listed in its docstring

Each config says which kinds it takes; any other token is an error that lists them. Tokens are
separated by commas only (``:0.25:tiny`` is an error that says so).
"""

import dataclasses
import re
from typing import FrozenSet, Optional

KINDS = ("number", "tiny", "paper", "ways", "shots")


@dataclasses.dataclass(frozen=True)
class Args:
  number: Optional[float] = None
  tiny: bool = False
  paper: bool = False
  ways: Optional[int] = None
  shots: Optional[int] = None
  method: Optional[str] = None
  words: FrozenSet[str] = frozenset()


def _describe(takes, methods, words):
  names = {"number": "a number (e.g. 0.25)", "tiny": "'tiny'", "paper": "'paper'",
           "ways": "'<N>way' (e.g. 5way)", "shots": "'<K>shot' (e.g. 1shot)"}
  parts = [names[k] for k in KINDS if k in takes]
  parts += [repr(m) for m in methods] + [repr(w) for w in words]
  return ", ".join(parts) if parts else "no arguments"


def parse(arg, takes=("number", "tiny"), methods=(), words=()):
  """``Args`` from the config argument ``arg`` (None or '' gives the defaults).

  ``takes``: the kinds of ``KINDS`` this config accepts; ``methods``: the method names it
  accepts; ``words``: its own switches. Raises ValueError naming the bad token and what the
  config accepts.
  """
  bad_kinds = sorted(set(takes) - set(KINDS))
  if bad_kinds:
    raise ValueError(f"Unknown argument kinds {bad_kinds}; choose from {list(KINDS)}.")
  accepted = _describe(takes, methods, words)
  if arg and ":" in arg:
    raise ValueError(f"Config argument {arg!r}: separate arguments with commas, not colons "
                     f"(e.g. ':0.25,tiny'). This config takes {accepted}.")
  out = {"words": set()}
  for token in (t.strip() for t in (arg or "").split(",")):
    if not token:
      continue
    kind, value = _classify(token)
    if kind == "word" and token in methods:
      kind = "method"
    elif kind == "word" and token in words:
      kind = "words"
    if kind not in takes and kind not in ("method", "words"):
      raise ValueError(f"Config argument {token!r} is not one this config takes; it takes "
                       f"{accepted}, separated by commas.")
    if kind == "words":
      out["words"].add(token)
      continue
    if kind in out and kind != "tiny" and kind != "paper":
      raise ValueError(f"Config argument {token!r}: a {kind} was already given "
                       f"({out[kind]!r}); give it once.")
    out[kind] = value
  out["words"] = frozenset(out["words"])
  return Args(**out)


def _classify(token):
  if token in ("tiny", "paper"):
    return token, True
  match = re.fullmatch(r"(\d+)(way|shot)", token)
  if match:
    return ("ways" if match.group(2) == "way" else "shots"), int(match.group(1))
  try:
    return "number", float(token)
  except ValueError:
    return "word", token


def apply_noise_row(c, arg, default_noise, shrink, words=None, on_tiny=None):
  """The argument of a noisy-label row: a noise level (default ``default_noise``), the row's
  ``words`` (a dict word -> function of the config, applied in sorted order) and ``tiny``
  (``shrink(c)``, then ``on_tiny(c)`` for the row's own extra shrinking). Returns ``c``."""
  words = words or {}
  args = parse(arg, takes=("number", "tiny"), words=tuple(words))
  c.noise = default_noise if args.number is None else args.number
  for word in sorted(args.words):
    words[word](c)
  if args.tiny:
    shrink(c)
    if on_tiny is not None:
      on_tiny(c)
  return c


def set_field(config, key, value):
  """``config[a][b]... = value`` for the dotted ``key`` "a.b...", only where that field exists
  (a KeyError naming the missing part otherwise: no new fields by accident)."""
  parent = config
  *path, last = key.split(".")
  for part in path:
    if part not in parent:
      raise KeyError(f"{part!r} (in {key!r})")
    parent = parent[part]
  if last not in parent:
    raise KeyError(f"{last!r} (in {key!r})")
  parent[last] = value
