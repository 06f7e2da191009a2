"""t2l.files: a folder appears whole under its name, or not at all."""

import pytest

from t2l.files import folder_atomic


def test_folder_appears_whole_and_replaces_only_when_asked(tmp_path):
    path = tmp_path / "sub" / "out"
    with folder_atomic(path) as tmp:
        (tmp / "a").write_text("1")
        assert not path.exists()
    assert [p.name for p in path.iterdir()] == ["a"]
    with pytest.raises(OSError):  # a folder that is there already stays, unless replace
        with folder_atomic(path) as tmp:
            (tmp / "b").write_text("2")
    with folder_atomic(path, replace=True) as tmp:
        (tmp / "b").write_text("2")
    assert [p.name for p in path.iterdir()] == ["b"]
    assert [p.name for p in path.parent.iterdir()] == ["out"]  # no temporary folder left behind


def test_an_error_inside_leaves_the_old_folder_and_no_leftover(tmp_path):
    path = tmp_path / "out"
    path.mkdir()
    (path / "old").write_text("kept")
    with pytest.raises(RuntimeError):
        with folder_atomic(path, replace=True) as tmp:
            (tmp / "new").write_text("lost")
            raise RuntimeError("killed halfway")
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (path / "old").read_text() == "kept"
