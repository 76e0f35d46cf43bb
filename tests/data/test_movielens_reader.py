"""load_movielens on files written here: non-finite ratings refused by file, line and column; ids kept exact."""

import numpy as np
import pytest

from dts_ppl.data import load_movielens


def write_100k(path, rows, items=None):
    """u.data from (user, item, rating) rows given as text, and a u.item naming every item."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t881250949\n" for u, i, r in rows))
    items = sorted({int(i) for _, i, _ in rows}) if items is None else items
    (path / "u.item").write_text("".join(f"{i}|Movie {i} (1995)|01-Jan-1995||http://x|0|1\n" for i in items))
    return path


def write_latest(path, rows):
    path.mkdir(parents=True, exist_ok=True)
    body = "".join(f"{u},{i},{r},964982703\n" for u, i, r in rows)
    (path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + body)
    items = sorted({int(i) for _, i, _ in rows})
    (path / "movies.csv").write_text("movieId,title,genres\n" + "".join(f"{i},Movie {i},Drama\n" for i in items))
    return path


GOOD = [("1", "10", "4"), ("2", "10", "3.5"), ("2", "20", "1")]


@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-inf", "1e400", "-1e400", "infinity"])
@pytest.mark.parametrize("fmt", ["100k", "latest-small"])
def test_non_finite_ratings_are_refused_naming_file_line_and_column(tmp_path, fmt, bad):
    rows = GOOD + [("3", "20", bad)]
    if fmt == "100k":
        path, name, line = write_100k(tmp_path / "d", rows), "u.data", 4
    else:
        path, name, line = write_latest(tmp_path / "d", rows), "ratings.csv", 5  # line 1 is the header
    with pytest.raises(ValueError, match=rf"^data_dir: {name} line {line}: column rating: .*finite.*{bad}"):
        load_movielens(path)


@pytest.mark.parametrize("fmt", ["100k", "latest-small"])
def test_ids_above_2_53_stay_distinct(tmp_path, fmt):
    big = 2**53  # 2**53 and 2**53 + 1 are the same float64
    rows = [(str(big), "7", "1"), (str(big + 1), "7", "2"), (str(big + 2), str(big + 1), "3"), ("5", str(big), "4")]
    writer = write_100k if fmt == "100k" else write_latest
    ds = load_movielens(writer(tmp_path / "d", rows))
    assert ds.num_users == 4 and ds.num_items == 3
    assert [int(u) for u in ds.user_ids] == [5, big, big + 1, big + 2]
    assert [int(i) for i in ds.item_ids] == [7, big, big + 1]
    assert ds.user_ids.dtype == np.int64
    # every rating keeps its own (user, item): rows back in the written order
    triples = zip(ds.users, ds.items, ds.ratings, strict=True)
    got = [(int(ds.user_ids[u]), int(ds.item_ids[i]), float(r)) for u, i, r in triples]
    assert got == [(int(u), int(i), float(r)) for u, i, r in rows]


def test_ids_beyond_int64_are_exact_python_ints(tmp_path):
    huge = 2**64 + 1
    ds = load_movielens(write_100k(tmp_path / "d", [(str(huge), "1", "2"), (str(huge + 1), "1", "3")]))
    assert ds.user_ids.dtype == object and list(ds.user_ids) == [huge, huge + 1]
    np.testing.assert_array_equal(ds.users, [0, 1])


@pytest.mark.parametrize(
    ("field", "value", "column"),
    [(0, "1.5", "user_id"), (1, "x", "item_id"), (0, "1e3", "user_id"), (2, "four", "rating")],
)
def test_malformed_fields_name_their_column(tmp_path, field, value, column):
    row = ["3", "20", "4"]
    row[field] = value
    path = write_100k(tmp_path / "d", GOOD + [tuple(row)], items=[10, 20])
    with pytest.raises(ValueError, match=rf"^data_dir: u.data line 4: column {column}: non-numeric"):
        load_movielens(path)


def test_finite_ratings_are_read_exactly(tmp_path):
    rows = GOOD + [("3", "20", "1e300"), ("4", "10", "-0.5")]
    ds = load_movielens(write_latest(tmp_path / "d", rows))
    np.testing.assert_array_equal(ds.ratings, [4.0, 3.5, 1.0, 1e300, -0.5])
    assert ds.ratings.dtype == np.float64
