"""The shared command runner: exit statuses and one-line messages."""

from __future__ import annotations

import typer

from kdexplain.cli import UserError, run_app


def _app(exc: BaseException | None) -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.command()
    def go(n: int = 1) -> None:
        if exc is not None:
            raise exc

    return app


def test_success_usage_error_and_help(capsys):
    assert run_app(_app(None), [], prog_name="t", interrupted="-") == 0
    assert run_app(_app(None), ["--bogus"], prog_name="t", interrupted="-") == 2
    assert "No such option" in capsys.readouterr().err
    assert run_app(_app(None), ["--help"], prog_name="t", interrupted="-") == 0


def test_predictable_mistakes_are_one_error_line(capsys):
    for exc, text in [(UserError("bad layer"), "bad layer"), (FileNotFoundError("no file x"), "no file x"),
                      (ValueError("bad value"), "bad value"), (KeyError("missing key"), "missing key")]:
        assert run_app(_app(exc), [], prog_name="t", interrupted="-") == 2
        err = capsys.readouterr().err
        assert err.strip() == f"error: {text}"


def test_interrupt_says_what_is_kept(capsys):
    # typer turns KeyboardInterrupt into a silent status 130; the runner says what was kept
    assert run_app(_app(KeyboardInterrupt()), [], prog_name="t", interrupted="kept: rerun") == 130
    assert "kept: rerun" in capsys.readouterr().err


def test_hinton_cli_usage_error_is_a_status_not_a_crash(capsys):
    from analyses.hinton.__main__ import cli

    assert cli(["--bogus"]) == 2
    assert "No such option" in capsys.readouterr().err


_HEAVY = ("torch", "torchvision", "numpy", "pandas", "matplotlib", "scipy", "captum")


def test_help_and_config_errors_do_not_import_torch(tmp_path):
    """`kdexplain --help` and a mistake in the arguments answer without the heavy imports
    (the reason they take well under 2 s instead of ~11 s)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from kdexplain.cli import main\n"
        "codes = [main(['--help']), main(['quantify', '--help']), main(['report', 'nope']),\n"
        "         main(['run', 'nope.yaml']), main(['train-triplet', 'nope.yaml']),\n"
        "         main(['sweep', 'nope'])]\n"
        f"heavy = [m for m in {_HEAVY!r} if m in sys.modules]\n"
        "print(codes, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[0, 0, 2, 2, 2, 2] []"


def test_config_and_overrides_share_one_form():
    from kdexplain.cli import config_and_overrides

    assert config_and_overrides(["configs/tiny.yaml", "a=1"]) == ("configs/tiny.yaml", ["a=1"])
    assert config_and_overrides(["a=1"]) == ("quickstart", ["a=1"])
    assert config_and_overrides([]) == ("quickstart", [])


def test_package_names_load_on_first_use():
    import inspect

    import kdexplain

    assert inspect.isfunction(kdexplain.quantify) and kdexplain.build_model.__name__ == "build_model"
    import kdexplain.quantification.engine  # the package has a name of its own

    assert kdexplain.quantify is kdexplain.quantification.engine.quantify
    assert "settings" in inspect.signature(kdexplain.quantify).parameters
    assert set(kdexplain.__all__) <= set(dir(kdexplain))
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        kdexplain.nope  # noqa: B018


def _help(capsys, *argv: str) -> str:
    from kdexplain.cli import main

    assert main([*argv, "--help"]) == 0
    return capsys.readouterr().out


def test_help_has_no_stray_type_tags_and_one_name_per_option(capsys):
    commands = [("run",), ("sweep",), ("train-triplet",), ("quantify",), ("report",),
                ("calibrate",), ("configs",), ("docs",), ("data", "build"), ("data", "info"),
                ("data", "preview")]
    texts = {c: _help(capsys, *c) for c in commands}
    for command, text in texts.items():
        # typer's rich panels tag flags, --help and arguments with their Python type
        assert "<bool>" not in text and "<list[" not in text, command
        assert "SPEC" not in text, command
    assert "[CONFIG] [KEY=VALUE]..." in texts[("run",)].splitlines()[0]
    for command in [("quantify",), ("data", "info"), ("data", "preview")]:
        assert "--data-root" in texts[command] and "--root " not in texts[command]
        assert "[default: val]" in " ".join(texts[command].split()), command
    assert "--config" not in texts[("train-triplet",)]
    assert "adam (Adam on log sigma)" in " ".join(texts[("quantify",)].split())


def test_version_configs_and_docs(capsys):
    from importlib.metadata import version

    from kdexplain.cli import main
    from kdexplain.config import shipped_configs

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"kdexplain {version('kdexplain')}"
    assert main(["configs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(shipped_configs())
    assert {"tiny", "quickstart", "vgg16_cub"} <= set(shipped_configs())
    tiny = next(line for line in lines if line.startswith("tiny "))
    assert tiny.split(None, 1)[1] == "Tiny: the whole pipeline in seconds"
    assert main(["docs"]) == 0
    assert "data " in capsys.readouterr().out
    assert main(["docs", "data"]) == 0
    assert "mask" in capsys.readouterr().out
    assert main(["docs", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: no document 'nope'; shipped: ")


def test_a_config_name_resolves_from_any_folder(tmp_path, monkeypatch):
    import pytest

    from kdexplain.config import load_config, resolve_config, shipped_configs

    monkeypatch.chdir(tmp_path)  # no configs/ here
    assert resolve_config("tiny") == resolve_config("tiny.yaml") == shipped_configs()["tiny"]
    assert load_config("tiny").name == "tiny"
    with pytest.raises(FileNotFoundError, match="Shipped configs .*tiny"):
        resolve_config("nope")
    (tmp_path / "tiny").write_text("x")  # an existing file wins over a shipped name
    assert resolve_config("tiny") == tmp_path / "tiny" or resolve_config("tiny").name == "tiny"
