"""The flags a command line gives, found from the parser's own option strings: abbreviated, joined
to their values by '=', or after '--' (then not flags)."""

from __future__ import annotations

import pytest

from compare.cli import build_parser, flags


@pytest.mark.parametrize(("argv", "expected"), [
    (["--resume", "runs/a", "--epochs", "3"], ["--epochs", "--resume"]),
    (["--resume=runs/a", "--epoch=3", "--js"], ["--epochs", "--resume", "--json"]),
    (["--resume", "runs/a", "--lr", "0.1", "--debug"], ["--lr", "--resume"]),
    (["--resume", "runs/a", "--de", "cpu"], ["--resume"]),  # ambiguous: --device or --debug
    (["--resume", "runs/a", "--", "--lr"], ["--resume"]),
    (["--resume", "-1", "--seed", "-5"], ["--seed", "--resume"]),
])
def test_given_names_each_flag_of_the_command_line(argv: list[str], expected: list[str]) -> None:
    parser = build_parser()
    train = parser.parse_known_args(["train", "--resume", "x"])[0].parser
    assert flags.given(train, argv) == expected
