"""Few-shot data: the episode sampler, Omniglot's three sources and rotations, Mini-ImageNet.

Nothing touches the network: TFDS is exercised with tfds.testing.mock_data and an empty
directory. Tests on the real Omniglot files skip when ../shared/data is absent.
"""

import io
import logging
import os
import pathlib
import pickle
import zipfile

import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf
import tensorflow_datasets as tfds

from common.data import episodes, miniimagenet, omniglot
from common.data.episodes import EpisodeSampler
from common.errors import DataNotFoundError

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture
def omniglot_dir():
  folder = SHARED_DATA / "omniglot"
  if not folder.is_dir():
    pytest.skip(f"real data folder {folder} is not present on this machine")
  return folder


# ---------------------------------------------------------------------------------------------
# Episode sampler


def id_images(num_classes, per_class, size=2):
  """Class-major float32 images whose every pixel is the image's id = class * per_class + i."""
  ids = np.arange(num_classes * per_class, dtype=np.float32).reshape(num_classes, per_class)
  return np.broadcast_to(ids[..., None, None, None], ids.shape + (size, size, 1)).copy()


def image_ids(x):
  ids = x[..., 0, 0, 0]
  assert np.all(x == ids[..., None, None, None]), "an image was mixed up while gathering"
  return ids.astype(np.int64)


def check_meta_batch(batch, num_ways, shots, queries, per_class):
  """Labels, counts and support/query separation of every task; returns class sets."""
  task_classes = []
  for t in range(len(batch.support_x)):
    s_ids, q_ids = image_ids(batch.support_x[t]), image_ids(batch.query_x[t])
    assert len(set(s_ids)) == len(s_ids) and len(set(q_ids)) == len(q_ids)
    assert not set(s_ids) & set(q_ids), "support and query share an image"
    for ids, labels, count in ((s_ids, batch.support_y[t], shots),
                               (q_ids, batch.query_y[t], queries)):
      assert np.array_equal(np.bincount(labels, minlength=num_ways), [count] * num_ways)
      # All images of one label come from the class the sampler says the label stands for.
      np.testing.assert_array_equal(ids // per_class, batch.classes[t][labels])
    assert len(set(batch.classes[t])) == num_ways
    task_classes.append(set(batch.classes[t].tolist()))
  return task_classes


@pytest.mark.parametrize("m,n,k,q", [(1, 5, 1, 15), (4, 5, 5, 15), (3, 20, 5, 15), (2, 3, 2, 1)])
def test_episode_shapes_dtypes_and_consistency(m, n, k, q):
  per_class = 20
  images = id_images(70, per_class)
  sampler = EpisodeSampler(images, n, k, q, meta_batch_size=m, seed=3)
  batch = sampler.sample(0)
  assert batch.support_x.shape == (m, n * k, 2, 2, 1) and batch.support_x.dtype == np.float32
  assert batch.support_y.shape == (m, n * k) and batch.support_y.dtype == np.int32
  assert batch.query_x.shape == (m, n * q, 2, 2, 1) and batch.query_x.dtype == np.float32
  assert batch.query_y.shape == (m, n * q) and batch.query_y.dtype == np.int32
  assert batch.classes.shape == (m, n)
  for it in range(5):
    classes = check_meta_batch(sampler.sample(it), n, k, q, per_class)
    # m * n < 70: the tasks of a meta-batch use disjoint classes.
    assert len(set().union(*classes)) == m * n


def test_classes_disjoint_within_meta_batch_and_independent_across():
  sampler = EpisodeSampler(id_images(40, 4), num_ways=5, num_shots=1, num_queries=2,
                           meta_batch_size=7, seed=0)
  seen = set()
  repeats_across = 0
  previous = None
  for it in range(60):
    batch = sampler.sample(it)
    classes = check_meta_batch(batch, 5, 1, 2, 4)
    assert len(set().union(*classes)) == 35     # 7 tasks x 5 classes, all distinct
    current = set().union(*classes)
    if previous is not None:
      repeats_across += bool(current & previous)
    previous = current
    seen |= current
  assert seen == set(range(40)), "some classes are never drawn"
  # Each meta-batch starts from the whole pool (the original's get_tasks), so consecutive
  # meta-batches share classes: 35 of 40 classes each time.
  assert repeats_across == 59


def test_pool_reset_rule_is_the_originals():
  rng = np.random.default_rng(0)
  # Pool 12, 5-way: tasks 0 and 1 use 10 classes; before task 2, 10 + 5 >= 12: reset.
  overlaps = 0
  for _ in range(200):
    c = episodes.draw_classes(rng, 12, 5, 3)
    assert not set(c[0]) & set(c[1])
    overlaps += bool(set(c[2]) & (set(c[0]) | set(c[1])))
  assert overlaps > 150        # after the reset task 2 draws from all 12 classes
  # Pool 10, 5-way: used + N >= pool already holds before task 1 (5 + 5 >= 10), so even an
  # exactly divisible pool resets early: the original's `>=`.
  assert any(set(c[0]) & set(c[1]) for c in (episodes.draw_classes(rng, 10, 5, 2)
                                              for _ in range(50)))
  # Pool 11: 5 + 5 < 11, the two tasks are disjoint every time.
  for _ in range(50):
    c = episodes.draw_classes(rng, 11, 5, 2)
    assert not set(c[0]) & set(c[1])


def test_support_and_query_are_shuffled():
  sampler = EpisodeSampler(id_images(10, 20), num_ways=5, num_shots=5, num_queries=15,
                           meta_batch_size=2, seed=1)
  batch = sampler.sample(0)
  for y in (batch.support_y, batch.query_y):
    for row in y:
      assert not np.all(np.diff(row) >= 0), "labels come out class-major: not shuffled"
  # Support and query are shuffled with different permutations.
  assert not np.array_equal(batch.support_y[:, :25], batch.query_y[:, :25])


def test_episodes_are_a_pure_function_of_seed_and_iteration():
  images = id_images(30, 20)
  a = EpisodeSampler(images, 5, 1, 15, meta_batch_size=3, seed=11)
  b = EpisodeSampler(images, 5, 1, 15, meta_batch_size=3, seed=11)
  for _ in range(3):
    a.sample(1)            # no hidden state: earlier draws do not change later ones
  x, y = a.sample(7), b.sample(7)
  for u, v in zip(x, y):
    np.testing.assert_array_equal(u, v)
  z = a.sample(8)
  assert not np.array_equal(x.support_x, z.support_x)
  w = EpisodeSampler(images, 5, 1, 15, meta_batch_size=3, seed=12).sample(7)
  assert not np.array_equal(x.support_x, w.support_x)


def test_uint8_images_are_divided_by_255_like_the_original():
  values = np.arange(4 * 20 * 2 * 2 * 3) % 256
  images = values.astype(np.uint8).reshape(4, 20, 2, 2, 3)
  batch = EpisodeSampler(images, 2, 3, 4, meta_batch_size=2, seed=0).sample(5)
  reference = (images.astype(np.float64) / 255.).astype(np.float32)   # X / 255. as float32
  for t in range(2):
    for x, labels, count in ((batch.support_x[t], batch.support_y[t], 3),
                             (batch.query_x[t], batch.query_y[t], 4)):
      for image, label in zip(x, labels):
        candidates = reference[batch.classes[t][label]]
        assert any(np.array_equal(image, c) for c in candidates)
  assert batch.support_x.dtype == np.float32


def test_sampler_errors():
  images = id_images(6, 10)
  with pytest.raises(ValueError, match="num_shots \\+ num_queries = 5 \\+ 6 exceeds the 10"):
    EpisodeSampler(images, 2, 5, 6)
  EpisodeSampler(images, 2, 5, 5)            # exactly all images of a class is fine
  with pytest.raises(ValueError, match="num_ways=7 but the pool holds only 6 classes"):
    EpisodeSampler(images, 7, 1, 1)
  with pytest.raises(ValueError, match="class-major"):
    EpisodeSampler(images[:, :, :, :, 0], 2, 1, 1)
  with pytest.raises(ValueError, match="num_shots must be an integer >= 1"):
    EpisodeSampler(images, 2, 0, 1)
  with pytest.raises(ValueError, match="iteration"):
    EpisodeSampler(images, 2, 1, 1).sample(-1)


def test_one_hot():
  y = np.array([[2, 0, 1]], np.int32)
  np.testing.assert_array_equal(episodes.one_hot(y, 3)[0], np.eye(3)[[2, 0, 1]])


# ---------------------------------------------------------------------------------------------
# Rotation classes


def asymmetric_character():
  """A 6x6 'L' with a tail: no rotation of it equals another one."""
  c = np.zeros((6, 6), np.float32)
  c[0:5, 1] = 1
  c[4, 1:4] = 1
  c[0, 2] = 1
  return c


def test_rotation_classes_follow_scipy_rotate_direction():
  chars = np.stack([asymmetric_character(), asymmetric_character().T])      # 2 characters
  images = np.stack([chars, 1 - chars], axis=1)[..., None]                   # [2, 2, 6, 6, 1]
  classes = omniglot.rotation_classes(images)
  assert classes.shape == (8, 2, 6, 6, 1)
  for c in range(2):
    for r, angle in enumerate(omniglot.ROTATIONS):
      for d in range(2):
        image = images[c, d, ..., 0]
        # The original: scipy.ndimage.interpolation.rotate(img, angle, reshape=False).
        exact = scipy.ndimage.rotate(image, angle, reshape=False, order=0)
        spline = scipy.ndimage.rotate(image, angle, reshape=False)
        np.testing.assert_array_equal(classes[4 * c + r, d, ..., 0], exact)
        np.testing.assert_allclose(classes[4 * c + r, d, ..., 0], spline, atol=1e-6)
  # Counter-clockwise on screen: the top-right pixel moves to the top-left corner.
  marker = np.zeros((1, 1, 3, 3, 1), np.float32)
  marker[0, 0, 0, 2] = 1
  assert omniglot.rotation_classes(marker)[1, 0, 0, 0, 0] == 1
  distinct = {classes[r, 0].tobytes() for r in range(4)}
  assert len(distinct) == 4
  np.testing.assert_array_equal(omniglot.rotation_classes(images, rotations=False), images)


# ---------------------------------------------------------------------------------------------
# Omniglot: a tiny release written by the test, in every format


# (set, alphabet, character folder, global index). Folder names and global indices disagree in
# order on purpose: characters must come out by global index.
TINY = [("images_background", "Zeta", "character01", 1),
        ("images_background", "Zeta", "character02", 2),
        ("images_background", "Alpha", "character01", 3),
        ("images_background", "Alpha", "character02", 4),
        ("images_evaluation", "Omega", "character02", 6),
        ("images_evaluation", "Omega", "character01", 5)]
DRAWERS = 20


def tiny_drawings(seed=0):
  """bool [6, 20, 105, 105] drawings (True = background), keyed like TINY sorted by index."""
  rng = np.random.default_rng(seed)
  return rng.random((len(TINY), DRAWERS, 105, 105)) > 0.15


def png_bytes(drawing):
  return tf.io.encode_png(np.where(drawing, 255, 0).astype(np.uint8)[..., None]).numpy()


@pytest.fixture(scope="module")
def tiny_release(tmp_path_factory):
  """The tiny release as folders, as zips (members shuffled) and as npz files."""
  root = tmp_path_factory.mktemp("omniglot_tiny")
  drawings = tiny_drawings()
  by_index = sorted(TINY, key=lambda t: t[3])
  members = {}
  for pos, (set_name, alphabet, char, index) in enumerate(by_index):
    for d in range(DRAWERS):
      rel = f"{set_name}/{alphabet}/{char}/{index:04d}_{d + 1:02d}.png"
      members[rel] = png_bytes(drawings[pos, d])
      path = root / "folders" / rel
      path.parent.mkdir(parents=True, exist_ok=True)
      path.write_bytes(members[rel])
  (root / "zips").mkdir()
  (root / "npz").mkdir()
  rng = np.random.default_rng(1)
  for set_name in omniglot.DEFAULT_SETS:
    names = [n for n in members if n.startswith(set_name + "/")]
    with zipfile.ZipFile(root / "zips" / f"{set_name}.zip", "w") as archive:
      archive.writestr(f"{set_name}/", b"")
      for n in rng.permutation(names):
        archive.writestr(str(n), members[n])
    rows = [pos for pos, t in enumerate(by_index) if t[0] == set_name]
    np.savez_compressed(root / "npz" / f"{set_name}.npz", images=drawings[rows],
                        labels=np.repeat(np.arange(len(rows))[:, None], DRAWERS, axis=1))
  return root, drawings, by_index


def test_tiny_release_folder_zip_and_npz_agree(tiny_release):
  root, drawings, by_index = tiny_release
  folder = omniglot.read_omniglot("files", root / "folders")
  archive = omniglot.read_omniglot("files", root / "zips")
  compact = omniglot.read_omniglot("npz", root / "npz")
  for raw in (folder, archive, compact):
    assert raw.images.dtype == bool and raw.images.shape == (6, DRAWERS, 105, 105)
    np.testing.assert_array_equal(raw.images, drawings)
  expected = [omniglot.Character(i, a, c, s) for s, a, c, i in by_index]
  assert list(folder.characters) == expected and list(archive.characters) == expected
  # The npz keeps no names, and a set that is not the complete official one no indices.
  assert [c.set for c in compact.characters] == [c.set for c in expected]
  loaded = [omniglot.load_omniglot(source, root / sub, num_train_characters=4)
            for source, sub in (("files", "folders"), ("files", "zips"), ("npz", "npz"))]
  for data in loaded:
    assert data.train_images.shape == (16, DRAWERS, 28, 28, 1)
    assert data.test_images.shape == (8, DRAWERS, 28, 28, 1)
    np.testing.assert_array_equal(data.train_images, loaded[0].train_images)
    np.testing.assert_array_equal(data.test_images, loaded[0].test_images)
  idx = omniglot.nearest_indices(105, 28)
  strokes = (~drawings).astype(np.float32)
  # Class 4c + r is character c rotated r times; meta-test starts at character 4.
  for c in range(6):
    for r in range(4):
      images = loaded[0].train_images if c < 4 else loaded[0].test_images
      got = images[4 * (c % 4 if c < 4 else c - 4) + r, ..., 0]
      want = np.rot90(strokes[c][:, idx][:, :, idx], r, axes=(1, 2))
      np.testing.assert_array_equal(got, want)
  data = loaded[0]
  assert data.class_info(4 * 2 + 3) == (expected[2], 270)
  assert data.info["num_train_classes"] == 16 and data.info["num_test_classes"] == 8


def test_tiny_release_tfds_source_matches(tiny_release, tmp_path):
  _, drawings, by_index = tiny_release
  alphabets = sorted({t[1] for t in TINY})
  records = []
  for pos, (set_name, alphabet, char, index) in enumerate(by_index):
    for d in range(DRAWERS):
      records.append((set_name, {
          "image": np.repeat(np.where(drawings[pos, d], 255, 0).astype(np.uint8)[..., None],
                             3, axis=-1),
          "alphabet": alphabets.index(alphabet),
          "alphabet_char_id": int(char[len("character"):]) - 1,
          "label": index - 1}))
  order = np.random.default_rng(2).permutation(len(records))   # TFDS's record order

  def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
    del self, decoders, read_config, shuffle_files
    set_name = {v: k for k, v in omniglot.TFDS_SPLITS.items()}[str(split)]
    rows = [records[i][1] for i in order if records[i][0] == set_name]
    return tf.data.Dataset.from_tensor_slices(
        {key: np.stack([r[key] for r in rows]) for key in rows[0]})

  with tfds.testing.mock_data(as_dataset_fn=as_dataset):
    raw = omniglot.read_omniglot("tfds", tmp_path, tfds_download=True)
  assert [c.index for c in raw.characters] == [t[3] for t in by_index]
  assert [c.name for c in raw.characters] == [t[2] for t in by_index]
  # TFDS keeps no drawer number: the same 20 drawings per character, in record order.
  for c in range(len(by_index)):
    got = sorted(d.tobytes() for d in raw.images[c])
    want = sorted(d.tobytes() for d in drawings[c])
    assert got == want


def test_tfds_not_prepared_is_a_clear_error_without_network(tmp_path):
  with pytest.raises(DataNotFoundError) as error:
    omniglot.read_omniglot("tfds", tmp_path)
  assert "tfds_download=True" in str(error.value) and "omniglot" in str(error.value)
  with pytest.raises(ValueError, match="no set 'images_other'"):
    omniglot.read_omniglot("tfds", tmp_path, sets=("images_other",))


def test_missing_files_name_the_layout_and_download(tmp_path):
  for source in ("files", "npz"):
    with pytest.raises(DataNotFoundError) as error:
      omniglot.load_omniglot(source, tmp_path)
    message = str(error.value)
    assert "images_background" in message and "images_evaluation" in message
    assert omniglot.URL in message and "images_background.zip" in message
  with pytest.raises(DataNotFoundError, match="does not exist"):
    omniglot.load_omniglot("files", tmp_path / "nowhere")
  with pytest.raises(DataNotFoundError, match="needs data_dir"):
    omniglot.load_omniglot("npz", "")
  with pytest.raises(ValueError, match="Unknown Omniglot source 'disk'"):
    omniglot.load_omniglot("disk", tmp_path)


def test_split_rule_and_empty_split_errors(tiny_release):
  root = tiny_release[0]
  assert omniglot.split_characters(1623)[0] == 1200
  assert omniglot.split_characters(1623, num_train_characters=1000)[0] == 1000
  n, note = omniglot.split_characters(136)
  assert n == 136 * 1200 // 1623 == 100 and "fewer than the release's 1623" in note
  # 6 characters: 6 * 1200 // 1623 = 4 for meta-train, 2 for meta-test.
  data = omniglot.load_omniglot("npz", root / "npz")
  assert data.num_train_characters == 4 and "rounded down" in data.info["split_note"]
  for bad in (0, 6, 7):
    with pytest.raises(ValueError, match="would leave meta-.* empty"):
      omniglot.load_omniglot("npz", root / "npz", num_train_characters=bad)
  # 2 characters: 2 * 1200 // 1623 = 1 each side; 1 character cannot be split.
  assert omniglot.load_omniglot("npz", root / "npz", sets=("images_evaluation",),
                                rotations=False).train_images.shape[0] == 1
  with pytest.raises(ValueError, match="would leave meta-train empty"):
    omniglot.split_characters(1)


def test_damaged_npz_and_zip_are_clear_errors(tmp_path):
  np.savez(tmp_path / "images_background.npz", images=np.zeros((2, 20, 105, 105), np.uint8),
           labels=np.zeros((2, 20), int))
  with pytest.raises(ValueError, match="expected bool"):
    omniglot.read_omniglot("npz", tmp_path, sets=("images_background",))
  np.savez(tmp_path / "images_background.npz", images=np.zeros((2, 20, 105, 105), bool),
           labels=np.zeros((2, 20), int))
  with pytest.raises(ValueError, match="not the character positions"):
    omniglot.read_omniglot("npz", tmp_path, sets=("images_background",))
  (tmp_path / "images_evaluation.zip").write_bytes(b"<html>not found</html>")
  with pytest.raises(ValueError, match="cannot read the zip"):
    omniglot.read_omniglot("files", tmp_path, sets=("images_evaluation",))


def test_cache_gives_the_same_arrays(tiny_release, tmp_path):
  root = tiny_release[0]
  first = omniglot.load_omniglot("files", root / "zips", cache_dir=tmp_path)
  second = omniglot.load_omniglot("files", root / "zips", cache_dir=tmp_path)
  assert not first.info["cache_hit"] and second.info["cache_hit"]
  np.testing.assert_array_equal(first.train_images, second.train_images)
  np.testing.assert_array_equal(first.test_images, second.test_images)
  assert first.characters == second.characters
  other = omniglot.load_omniglot("files", root / "zips", cache_dir=tmp_path, image_size=14)
  assert not other.info["cache_hit"] and other.train_images.shape[2] == 14
  # A changed source file (new modification time) makes the cached arrays stale.
  zipped = root / "zips" / "images_evaluation.zip"
  stat = zipped.stat()
  os.utime(zipped, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
  assert not omniglot.load_omniglot("files", root / "zips", cache_dir=tmp_path).info["cache_hit"]


def test_resize_methods(tiny_release):
  drawings = tiny_release[1][:2, :3]
  nearest = omniglot.preprocess(drawings)
  assert set(np.unique(nearest)) <= {0.0, 1.0}
  # The Pillow NEAREST rule is what tf.image.resize(method="nearest") picks too.
  values = np.where(drawings, 255, 0).astype(np.float32).reshape(-1, 105, 105, 1)
  tf_nearest = 1 - tf.image.resize(values, (28, 28), method="nearest").numpy() / 255
  np.testing.assert_array_equal(nearest.reshape(-1, 28, 28, 1), tf_nearest)
  lanczos = omniglot.preprocess(drawings, resize_method="lanczos3")
  assert lanczos.shape == nearest.shape and lanczos.dtype == np.float32
  assert lanczos.min() >= 0 and lanczos.max() <= 1
  assert len(np.unique(lanczos)) > 2                     # antialiased grey levels
  full = omniglot.preprocess(drawings, image_size=105)
  np.testing.assert_array_equal(full[..., 0], ~drawings)
  with pytest.raises(ValueError, match="resize_method 'cubic'"):
    omniglot.preprocess(drawings, resize_method="cubic")


# ---------------------------------------------------------------------------------------------
# Omniglot: the real files


def test_small1_zip_equals_background_npz_bit_for_bit(omniglot_dir):
  small = omniglot.read_omniglot("files", omniglot_dir, sets=("images_background_small1",))
  background = omniglot.read_omniglot("npz", omniglot_dir, sets=("images_background",))
  assert small.images.shape == (136, 20, 105, 105)
  assert sorted({c.alphabet for c in small.characters}) == [
      "Balinese", "Early_Aramaic", "Greek", "Korean", "Latin"]
  assert small.characters[0] == omniglot.Character(108, "Balinese", "character01",
                                                   "images_background_small1")
  index = np.array([c.index for c in small.characters])
  assert np.all(np.diff(index) > 0)
  assert [c.index for c in background.characters] == list(range(1, 965))
  np.testing.assert_array_equal(small.images, background.images[index - 1])
  # After preprocessing, through load_omniglot on both sources.
  small_data = omniglot.load_omniglot("files", omniglot_dir, sets=("images_background_small1",),
                                      rotations=False)
  both = np.concatenate([small_data.train_images, small_data.test_images])
  np.testing.assert_array_equal(both, omniglot.preprocess(background.images[index - 1]))
  lanczos = omniglot.preprocess(small.images[:10], resize_method="lanczos3")
  np.testing.assert_array_equal(
      lanczos, omniglot.preprocess(background.images[index[:10] - 1], resize_method="lanczos3"))


def test_full_release_counts_and_split(omniglot_dir):
  data = omniglot.load_omniglot("npz", omniglot_dir)
  assert data.info["num_characters"] == 1623
  assert sum(c.set == "images_background" for c in data.characters) == 964
  assert sum(c.set == "images_evaluation" for c in data.characters) == 659
  assert [c.index for c in data.characters] == list(range(1, 1624))
  assert data.num_train_classes + data.num_test_classes == 6492
  assert data.train_images.shape == (4800, 20, 28, 28, 1)
  assert data.test_images.shape == (1692, 20, 28, 28, 1)
  assert data.train_images.dtype == np.float32
  assert data.class_info(4799)[0].index == 1200 and data.class_info(4800)[0].index == 1201
  # Strokes are 1 and cover a small part of each image; rotations keep the pixel counts.
  assert 0.03 < data.train_images[:40].mean() < 0.2
  np.testing.assert_array_equal(data.train_images[1::4].sum(axis=(2, 3)),
                                data.train_images[0::4].sum(axis=(2, 3)))


# ---------------------------------------------------------------------------------------------
# Mini-ImageNet


class Py2Pickler(pickle._Pickler):  # pylint: disable=protected-access
  """Writes bytes as Python 2 `str` opcodes, as the pickles made under Python 2 hold them."""

  def save_bytes(self, obj):
    if len(obj) < 256:
      self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
    else:
      self.write(pickle.BINSTRING + len(obj).to_bytes(4, "little") + obj)
    self.memoize(obj)

  dispatch = dict(pickle._Pickler.dispatch)  # pylint: disable=protected-access
  dispatch[bytes] = save_bytes


def mini_split(num_classes, per_class, seed):
  images = np.random.default_rng(seed).integers(0, 256, (num_classes * per_class, 84, 84, 3),
                                                dtype=np.uint8)
  images[:, 0, 0, 0] = np.arange(num_classes * per_class) // per_class   # class marker
  names = {f"n{seed:02d}{c:06d}": list(range(c * per_class, (c + 1) * per_class))
           for c in range(num_classes)}
  return {"image_data": images, "class_dict": names}


def write_pickle(path, record, style):
  if style == "py2":
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump({k.encode(): v for k, v in record.items()})
    path.write_bytes(buf.getvalue())
  else:
    path.write_bytes(pickle.dumps(record, protocol=style))


@pytest.mark.parametrize("style", [2, pickle.HIGHEST_PROTOCOL, "py2"])
def test_miniimagenet_pickles(tmp_path, style):
  per_class = 20
  records = {"train": mini_split(3, per_class, 0), "val": mini_split(2, per_class, 1),
             "test": mini_split(2, per_class, 2)}
  for split, record in records.items():
    write_pickle(tmp_path / f"mini-imagenet-cache-{split}.pkl", record, style)
  data = miniimagenet.load_miniimagenet(tmp_path, images_per_class=per_class)
  for split, record in records.items():
    part = getattr(data, split)
    assert part.images.dtype == np.uint8
    assert part.images.shape == (len(record["class_dict"]), per_class, 84, 84, 3)
    flat = record["image_data"]
    np.testing.assert_array_equal(part.images.reshape(flat.shape), flat)
    # Class k is the original's label index // per_class.
    np.testing.assert_array_equal(part.images[:, :, 0, 0, 0],
                                  np.arange(len(flat)).reshape(-1, per_class) // per_class)
    assert part.class_names == tuple(record["class_dict"])
    np.testing.assert_array_equal(part.as_float(),
                                  (part.images / 255.).astype(np.float32))
  assert data.info["num_classes"] == {"train": 3, "val": 2, "test": 2}
  assert not data.info["class_names_note"]
  # Episodes straight from the uint8 array, scaled per episode.
  batch = EpisodeSampler(data.train.images, 2, 1, 3, meta_batch_size=1, seed=0).sample(0)
  assert batch.query_x.shape == (1, 6, 84, 84, 3) and batch.query_x.dtype == np.float32
  np.testing.assert_array_equal(np.round(batch.query_x[0, :, 0, 0, 0] * 255),
                                batch.classes[0][batch.query_y[0]])


def test_miniimagenet_subset_subdir_and_class_dict_disagreement(tmp_path, caplog):
  (tmp_path / "dataset_miniimagenet").mkdir()
  record = mini_split(2, 10, 0)
  # Swap one image between the two classes' index lists: class_dict no longer names blocks.
  names = list(record["class_dict"])
  record["class_dict"][names[0]][0], record["class_dict"][names[1]][0] = 10, 0
  write_pickle(tmp_path / "dataset_miniimagenet" / "mini-imagenet-cache-test.pkl", record, 4)
  with caplog.at_level(logging.WARNING):
    data = miniimagenet.load_miniimagenet(tmp_path, splits=("test",), images_per_class=10)
  assert data.train is None and data.val is None
  assert data.test.images.shape == (2, 10, 84, 84, 3)
  assert data.test.class_names == ("", "")
  assert "index // 10" in data.info["class_names_note"]["test"]
  np.testing.assert_array_equal(data.test.images[:, :, 0, 0, 0], [[0] * 10, [1] * 10])


def test_miniimagenet_errors(tmp_path):
  write_pickle(tmp_path / "mini-imagenet-cache-train.pkl", mini_split(2, 10, 0), 4)
  with pytest.raises(DataNotFoundError) as error:
    miniimagenet.load_miniimagenet(tmp_path, images_per_class=10)
  message = str(error.value)
  assert "mini-imagenet-cache-val.pkl  MISSING" in message
  assert "mini-imagenet-cache-test.pkl  MISSING" in message
  assert "mini-imagenet-cache-train.pkl  found" in message
  assert "renmengye/few-shot-ssl-public" in message
  with pytest.raises(ValueError, match="not a positive multiple of images_per_class=600"):
    miniimagenet.load_miniimagenet(tmp_path, splits=("train",))
  (tmp_path / "mini-imagenet-cache-val.pkl").write_bytes(b"<html>")
  with pytest.raises(ValueError, match="cannot unpickle"):
    miniimagenet.load_miniimagenet(tmp_path, splits=("val",))
  with pytest.raises(ValueError, match="Unknown Mini-ImageNet split"):
    miniimagenet.load_miniimagenet(tmp_path, splits=("valid",))
  with pytest.raises(DataNotFoundError, match="does not exist"):
    miniimagenet.load_miniimagenet(tmp_path / "nowhere")
