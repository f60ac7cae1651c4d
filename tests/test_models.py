"""The registry's ``package.module:factory`` form: a factory that is not one is one clear line."""

from __future__ import annotations

import pytest

from harness.cli import main
from harness.errors import UnknownModelError
from harness.models import get_model


def test_a_factory_returning_no_module_is_named() -> None:
    with pytest.raises(UnknownModelError) as err:
        get_model("os:getcwd")
    assert str(err.value) == (
        "model 'os:getcwd': getcwd returned a str, not a torch.nn.Module; name a function "
        "that builds and returns the model"
    )


def test_a_factory_needing_arguments_is_named() -> None:
    with pytest.raises(UnknownModelError, match=r"^model 'torch.nn:Linear': Linear cannot be "
                       r"called with no arguments \(missing a required argument: "
                       r"'in_features'\); name a function that builds the model from its "
                       r"default arguments$"):  # fmt: skip
        get_model("torch.nn:Linear")
    # keyword defaults are passed and checked too: the factory takes none of them
    with pytest.raises(UnknownModelError, match="cannot be called with num_classes=3"):
        get_model("tests.models_for_tests:tiny_cnn", num_classes=3)


def test_import_errors_say_what_to_do() -> None:
    with pytest.raises(UnknownModelError, match=r"No module named 'no_such_pkg'\): check the"):
        get_model("no_such_pkg.models:net")
    with pytest.raises(UnknownModelError, match="has no callable 'nothing': write package"):
        get_model("harness.zoo:nothing")


@pytest.mark.parametrize("name", ["os:getcwd", "torch.nn:Linear"])
def test_cli_says_it_in_one_line(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", name]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"cnnbench profile: error: model {name!r}: ")
