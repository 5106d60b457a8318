"""The `revoca` root group loads a command's module only when the command line names it
(ca/cli/__init__.py): its tables must name every command as the modules define it, and `revoca
--help` must read as it would with every module loaded, without loading any.
"""

from __future__ import annotations

import inspect
import subprocess
import sys

import click
from click.testing import CliRunner

from ca.cli import MODULES, SUMMARIES, cli


def _every_command_loaded() -> click.Group:
    """A plain click group with every module registered, as the CLI was before it loaded lazily."""
    group = click.Group("revoca", params=cli.params, help=cli.help, callback=cli.callback,
                        context_settings=cli.context_settings)
    for modules in MODULES.values():
        for module in modules:
            __import__(f"ca.cli.{module}", fromlist=["register"]).register(group)
    return group


def test_the_tables_name_the_same_commands_as_the_modules_register() -> None:
    assert set(SUMMARIES) == set(MODULES)
    assert set(_every_command_loaded().commands) == set(MODULES)


def test_each_summary_is_the_first_paragraph_of_the_commands_own_help() -> None:
    ctx = click.Context(cli, info_name="revoca")
    for name, summary in SUMMARIES.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.help is not None, name
        assert summary == inspect.cleandoc(command.help).split("\n\n")[0].replace("\n", " "), name


def test_serve_has_every_service_after_run_was_looked_up_first() -> None:
    """`run`'s module makes the `serve` group too, before the other modules add their services to it.
    In a fresh process: here every module is registered already."""
    probe = ("import click\nfrom ca.cli import cli\nctx = click.Context(cli, info_name='revoca')\n"
             "cli.get_command(ctx, 'run')\nprint(' '.join(sorted(cli.get_command(ctx, 'serve').commands)))")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    serve = _every_command_loaded().commands["serve"]
    assert isinstance(serve, click.Group)
    assert run.stdout.split() == sorted(serve.commands), run.stderr


def test_help_lists_every_command_as_with_every_module_loaded() -> None:
    lazy = CliRunner().invoke(cli, ["--help"], prog_name="revoca", terminal_width=80)
    eager = CliRunner().invoke(_every_command_loaded(), ["--help"], prog_name="revoca", terminal_width=80)
    assert lazy.exit_code == eager.exit_code == 0
    assert lazy.output == eager.output
    for name in MODULES:
        assert f"\n  {name} " in lazy.output


def test_a_fresh_process_imports_only_the_module_of_the_command_it_runs() -> None:
    probe = ("import sys\nfrom ca.cli import main\nsys.argv = ['revoca', *sys.argv[1:]]\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"  # the help goes to stdout, the modules to stderr
             "print(' '.join(m for m in sys.modules if m.startswith('ca.cli.') or m == 'sqlalchemy'), file=sys.stderr)")

    def loaded(*args: str) -> set[str]:
        run = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=60,
                             check=False)
        return set(run.stderr.split())

    gate = {"ca.cli.common", "ca.cli.gate", "ca.cli.acts"}  # every command passes the login gate
    assert loaded("--help") == gate
    assert loaded("crl", "--help") == gate | {"ca.cli.crl_cmds", "ca.cli.adopt_cmds"}  # adds import-history
    assert "ca.cli.ca_cmds" not in loaded("operator", "--help")
    assert {"ca.cli.serve_cmds", "ca.cli.ra_cmds", "ca.cli.ocsp_cmds"} <= loaded("serve", "--help")
