"""The row and table logic of experiments/faults/bad_input.py (not the sweep: that runs every
command line in a subprocess)."""

from experiments.faults import bad_input

STDERR = (
    "I1126 07:18:13.657404 140634678070144 dataset_info.py:711] Load dataset info from /x\n"
    "W1126 07:18:13.660566 140634678070144 checkpoint_manager.py:458] read only\n"
    "error: split 'test' has 2 episodes, fewer than --num_episodes=500\n"
)
TRACEBACK = (
    'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nValueError: bad\n'
)


def test_message_lines_leave_out_absl_log_lines():
    assert bad_input.message_lines(STDERR) == [STDERR.splitlines()[-1]]
    assert bad_input.error_line(STDERR).startswith("error: split 'test'")
    assert bad_input.error_line(TRACEBACK) == "ValueError: bad"
    assert bad_input.error_line("") == ""


def test_tree_hash_sees_names_and_contents(tmp_path):
    assert bad_input.tree_hash(None) is None
    assert bad_input.tree_hash(tmp_path / "missing") == "absent"
    (tmp_path / "a").write_text("1")
    first = bad_input.tree_hash(tmp_path)
    assert bad_input.tree_hash(tmp_path) == first
    (tmp_path / "a").write_text("2")
    assert bad_input.tree_hash(tmp_path) != first
    (tmp_path / "a").write_text("1")
    (tmp_path / "empty").mkdir()
    assert bad_input.tree_hash(tmp_path) != first  # an empty directory counts


def test_rows_and_table(tmp_path):
    case = bad_input.Case("evaluate-x", "too many", "lssvwm.evaluate", ("--w=1",), f"{tmp_path}/r")
    good = bad_input.make_row(
        case, f"python -m m --workdir={tmp_path}/r", 2, STDERR, "h1", "h1", 3.21, str(tmp_path)
    )
    assert good.command == "python -m m --workdir=$TMP/r" and good.watched == "$TMP/r"
    assert (good.message_lines, good.traceback, good.watched_changed) == (1, False, False)
    assert good.one_line and good.seconds == 3.2
    bad = bad_input.make_row(case, "python -m m", 1, TRACEBACK, "absent", "h2", 1.0)
    assert bad.message_lines == 3 and bad.traceback and bad.watched_changed
    assert not bad.one_line
    unwatched = bad_input.make_row(case, "c", 2, "error: x\n", None, None, 0.0)
    assert unwatched.watched_changed is None and unwatched.one_line
    header = {
        "command": "python -m experiments.faults.bad_input --out X",
        "commit": "abc1234",
        "wall_seconds": 61.0,
        "date": "2025-11-26",
        "machine": "2 CPU cores",
    }
    table = bad_input.markdown([good, bad, unwatched], header).splitlines()
    assert "Command: `python -m experiments.faults.bad_input --out X`" in table[2]
    assert "abc1234" in table[3] and "61 s" in table[4]
    assert table[6].startswith("2 of 3 cases fail as intended")
    rows = [line for line in table if line.startswith("| evaluate-x")]
    assert len(rows) == 3
    assert rows[0].split(" | ")[2:6] == ["2", "1", "no", "no"]
    assert rows[1].split(" | ")[2:6] == ["1", "**3**", "**yes**", "**yes**"]
    assert rows[2].split(" | ")[5] == "—"
    assert "`error: split 'test' has 2 episodes" in rows[0]
