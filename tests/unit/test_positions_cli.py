"""Position specs and CLI argument errors (no model needed)."""

import pytest
import torch

from steerscope.cli.main import main
from steerscope.errors import InvalidArgumentError
from steerscope.steer import Positions


def test_position_masks():
    abs_pos = torch.tensor([[-1, -1, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5, 6]])
    plen = torch.tensor([3, 5])
    assert Positions.parse("prompt").mask(abs_pos, plen).tolist() == [
        [False, False, True, True, True, False, False], [True] * 5 + [False] * 2]
    assert Positions.parse("generated").mask(abs_pos, plen)[0].tolist() == [False] * 5 + [True] * 2
    assert Positions.parse("from:4").mask(abs_pos, plen)[1].tolist() == [False] * 4 + [True] * 3
    assert Positions.parse(4) == Positions.parse("from:4")
    assert Positions.parse("last:2").mask(abs_pos, plen)[1].tolist() == [False, False, False, True, True, False, False]
    assert Positions.parse("all").mask(abs_pos, plen)[0].tolist() == [False, False] + [True] * 5
    with pytest.raises(InvalidArgumentError, match="from:K"):
        Positions.parse("middle")


@pytest.mark.parametrize("argv", [
    ["generate", "hi", "--scale", "nan"],
    ["generate", "hi", "--max-new-tokens", "0"],
    ["generate", ""],
    ["vector", "show", "/does/not/exist.safetensors"],
    ["generate", "hi", "--vector", "/does/not/exist.safetensors"],
    ["generate", "hi", "--positions", "sideways"],
    ["no-such-command"],
])
def test_cli_bad_input_is_one_line_exit_2(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
