from typer.testing import CliRunner

from irstd.cli.main import app


def test_help_lists_commands():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "irstd" in result.output.lower() or "Usage" in result.output
