"""The `revoca` root group loads a command's module only when the command line names it
(ca/cli/__init__.py), and `revoca serve` a service's module only when it is named
(ca.cli.serve_cmds.SERVICES): their tables must name every command as the modules define it, and
`revoca --help` must read as it would with every module loaded, without loading any.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import click
from click.testing import CliRunner

import ca
from ca.cli import MODULES, SUMMARIES, cli
from ca.cli.serve_cmds import SERVICES


def _every_command_loaded() -> click.Group:
    """A plain click group with every module registered, as the CLI was before it loaded lazily
    (the services' modules once `serve` is there to add to)."""
    group = click.Group("revoca", params=cli.params, help=cli.help, callback=cli.callback,
                        context_settings=cli.context_settings)
    for module in [*(m for modules in MODULES.values() for m in modules), *SERVICES.values()]:
        __import__(f"ca.cli.{module}", fromlist=["register"]).register(group)
    return group


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter (what a new `revoca` process has loaded), its output as text."""
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_the_tables_name_the_same_commands_as_the_modules_register() -> None:
    assert set(SUMMARIES) == set(MODULES)
    assert set(_every_command_loaded().commands) == set(MODULES)


def test_each_summary_is_the_first_paragraph_of_the_commands_own_help() -> None:
    ctx = click.Context(cli, info_name="revoca")
    for name, summary in SUMMARIES.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.help is not None, name
        assert summary == inspect.cleandoc(command.help).split("\n\n")[0].replace("\n", " "), name


def test_serve_finds_every_service_its_modules_make_whichever_command_was_looked_up_first() -> None:
    """`revoca serve NAME` loads NAME's module only; the table names each service as its module
    makes it.  In a fresh process, after `run` (which spawns them all) was looked up: here every
    module is registered already."""
    serve = _every_command_loaded().commands["serve"]
    assert isinstance(serve, click.Group)
    assert sorted(SERVICES) == sorted(serve.commands)
    for name, module in SERVICES.items():
        assert serve.commands[name].callback.__module__ == f"ca.cli.{module}", name  # type: ignore[union-attr]
    probe = ("import click, sys\nfrom ca.cli import cli\nctx = click.Context(cli, info_name='revoca')\n"
             "cli.get_command(ctx, 'run')\nserve = cli.get_command(ctx, 'serve')\n"
             "sub = click.Context(serve, info_name='serve', parent=ctx)\n"
             "print(' '.join(serve.list_commands(sub)))\n"
             "print(' '.join(n for n in serve.list_commands(sub) if serve.get_command(sub, n).name == n))")
    run = _python(probe)
    listed, found = run.stdout.splitlines()
    assert listed.split() == found.split() == sorted(serve.commands), run.stderr


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
        return set(_python(probe, *args).stderr.split())

    gate = {"ca.cli.common", "ca.cli.gate", "ca.cli.acts"}  # every command passes the login gate
    assert loaded("--help") == gate
    assert loaded("crl", "--help") == gate | {"ca.cli.crl_cmds", "ca.cli.adopt_cmds"}  # adds import-history
    assert "ca.cli.ca_cmds" not in loaded("operator", "--help")
    assert {f"ca.cli.{m}" for m in SERVICES.values()} <= loaded("serve", "--help")  # the list of services
    # a service's process: its own module only (and the database layer, which every service uses)
    assert loaded("serve", "hsm", "--help") - {"sqlalchemy"} == gate | {"ca.cli.serve_cmds"}
    assert loaded("serve", "ra", "--help") - {"sqlalchemy"} == gate | {"ca.cli.serve_cmds", "ca.cli.ra_cmds"}
    assert loaded("run", "--help") >= gate | {"ca.cli.run_cmds"}


def test_a_revoca_process_exits_without_the_last_full_collection_and_main_leaves_the_collector_alone() -> None:
    """ca.cli.run: the console script and `python -m ca` freeze what the process holds before the
    interpreter's final collection walks it (~0.15 s of CPU at each exit), and import a command's
    module with the collector off, which must be on again after (a service runs for months);
    `main`, which the tests run in their own process, changes neither."""
    probe = ("import atexit, gc, sys\nfrom ca.cli import {0}\n"
             "atexit.register(lambda: print('enabled', gc.isenabled(), 'frozen', gc.get_freeze_count()))\n"
             "sys.argv = ['revoca', 'serve', 'ra', '--help']\n{0}()\n")
    for entry, frozen in (("run", True), ("main", False)):
        done = _python(probe.format(entry))
        assert done.returncode == 0 and "Usage: revoca serve ra" in done.stdout, done.stderr
        count = int(done.stdout.split("frozen ")[-1])
        assert (count > 10_000) is frozen, (entry, count)
        assert "enabled True frozen" in done.stdout, done.stdout
    assert "from ca.cli import run\n" in Path(ca.__file__).with_name("__main__.py").read_text()
    assert [e.value for e in entry_points(group="console_scripts", name="revoca")] == ["ca.cli:run"]


def test_a_service_looked_up_from_a_context_of_serve_alone_is_the_service_not_its_modules_group() -> None:
    """Found: the service's module registered into the lookup context's root, which for a context
    made for `serve` alone is `serve` itself: `serve ocsp` became the `ocsp` group."""
    probe = ("import click\nfrom ca.cli.serve_cmds import serve_group\n"
             "ctx = click.Context(serve_group, info_name='serve')\n"
             "for name in ('ocsp', 'tsa', 'web'):\n"
             "    print(name, type(serve_group.get_command(ctx, name)).__name__)\n"
             "print('extra', sorted(set(serve_group.commands) - {'hsm', 'ocsp', 'ocsp-signer', 'tsa', 'web'}))")
    run = _python(probe)
    assert run.stdout.split("\n")[:4] == ["ocsp Command", "tsa Command", "web Command", "extra []"], run.stderr
