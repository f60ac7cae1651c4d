"""The registry's names as users type them: ``package.module:factory``, suite files,
torchvision and timm; each bad one is one clear line."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from harness.cli.main import main
from harness.core.errors import UnknownModelError
from harness.models import (
    get_entry,
    get_model,
    list_models,
    register_model,
    unregister_model,
)
from harness.models.resolve import install_hint


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
        get_model("harness.models.zoo:nothing")


@pytest.mark.parametrize("name", ["os:getcwd", "torch.nn:Linear"])
def test_cli_says_it_in_one_line(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", name]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"cnnbench profile: error: model {name!r}: ")


# ----------------------------------------------------- issues 16 and 17: names a user types


@pytest.fixture
def user_modules(tmp_path, monkeypatch):
    """A directory on the import path for a test's own modules; whatever they import or
    register is gone afterwards."""
    from harness.models import registry

    monkeypatch.syspath_prepend(str(tmp_path))
    before_modules, before_models = set(sys.modules), set(registry.registered_names())
    yield tmp_path
    for name in set(sys.modules) - before_modules:
        sys.modules.pop(name, None)
    for name in set(registry.registered_names()) - before_models:
        unregister_model(name)


@pytest.mark.parametrize(
    "name", [":foo", "..:x", ".mod:net", "pkg.:net", "pkg..mod:net", "mod:", "mod:1net", "a b:c"]
)
def test_a_malformed_reference_says_how_to_write_one(name: str) -> None:
    with pytest.raises(UnknownModelError) as err:
        get_entry(name)
    assert str(err.value) == (
        f"{name!r} is not a model name: write package.module:factory (e.g. mypkg.nets:build), "
        "torchvision:NAME, timm:NAME or a registered name (`cnnbench models`)"
    )


def test_a_module_that_fails_on_import_is_one_line(user_modules) -> None:
    (user_modules / "hm_raises.py").write_text("x = 1\nraise ValueError('no weights\\nhere')\n")
    (user_modules / "hm_syntax.py").write_text("def net(:\n    pass\n")
    (user_modules / "hm_exits.py").write_text("import sys\nsys.exit(3)\n")
    with pytest.raises(UnknownModelError) as err:
        get_entry("hm_raises:net")
    assert str(err.value) == (
        "model 'hm_raises:net': importing module 'hm_raises' raised ValueError: no weights; "
        "fix the module or name another model"
    )
    with pytest.raises(UnknownModelError) as err:
        get_entry("hm_syntax:net")
    assert str(err.value).startswith(
        "model 'hm_syntax:net': importing module 'hm_syntax' raised SyntaxError: invalid syntax "
        "(hm_syntax.py, line 1); fix the module"
    )
    with pytest.raises(UnknownModelError, match="raised SystemExit: 3; fix the module"):
        get_entry("hm_exits:net")


def test_a_registered_shape_is_read_when_registered(user_modules) -> None:
    from harness.core.errors import InvalidInputError

    with pytest.raises(InvalidInputError) as err:
        register_model("hm_abc", input_shape="abc")(lambda: None)
    assert str(err.value).startswith(
        "register_model('hm_abc'): input_shape 'abc': cannot read input shape 'abc'"
    )
    with pytest.raises(InvalidInputError, match=r"register_model\('hm_min'\): min_input_shape"):
        register_model("hm_min", input_shape=(3, 8, 8), min_input_shape=(3, 0))(lambda: None)
    assert "hm_abc" not in list_models() and "hm_min" not in list_models()
    register_model("hm_text", input_shape="3x64x64")(lambda: None)
    assert get_entry("hm_text").input_shape == (3, 64, 64)


def test_module_factory_naming_a_registered_factory_uses_its_registration(user_modules) -> None:
    (user_modules / "hm_suite.py").write_text(
        "from torch import nn\nfrom harness import register_model\n\n"
        "@register_model('hm_small', input_shape=(3, 64, 64), min_input_shape=(3, 8, 8))\n"
        "def small():\n    return nn.Conv2d(3, 4, 3)\n\n"
        "def unregistered():\n    return nn.Conv2d(3, 4, 3)\n"
    )
    entry = get_entry("hm_suite:small")
    assert entry is get_entry("hm_small")
    assert entry.input_shape == (3, 64, 64) and entry.min_input_shape == (3, 8, 8)
    assert get_entry("hm_suite:unregistered").input_shape == (3, 224, 224)  # the generic default


def test_importing_a_module_again_re_registers_instead_of_colliding(user_modules) -> None:
    import importlib

    from harness.core.errors import DuplicateModelError

    (user_modules / "hm_again.py").write_text(
        "from torch import nn\nfrom harness import register_model\n\n"
        "@register_model('hm_again', input_shape=(3, 8, 8))\n"
        "def net():\n    return nn.Conv2d(3, 4, 3)\n"
    )
    module = importlib.import_module("hm_again")
    first = get_entry("hm_again")
    importlib.reload(module)  # what a retried import does: the same definition again
    assert get_entry("hm_again") is not first and get_entry("hm_again").factory is module.net
    with pytest.raises(DuplicateModelError, match="'hm_again' is already registered"):
        register_model("hm_again", input_shape=(3, 8, 8))(lambda: None)  # another definition


def test_suites_register_their_models(user_modules) -> None:
    from harness.core.errors import InvalidInputError
    from harness.models import load_suites

    suites = user_modules / "my_suites"
    suites.mkdir()
    (suites / "test_hm_a.py").write_text(
        "from torch import nn\nfrom harness import register_model\n\n"
        "@register_model('hm_suite_a', input_shape=(1, 28, 28))\n"
        "def net():\n    return nn.Conv2d(1, 4, 3)\n"
    )
    (suites / "hm_b_test.py").write_text(
        "from torch import nn\nfrom harness import register_model\n\n"
        "@register_model('hm_suite_b', input_shape=(3, 8, 8))\n"
        "def net():\n    return nn.Conv2d(3, 4, 3)\n"
    )
    (suites / "helpers.py").write_text("raise AssertionError('not a test file: never imported')\n")
    assert load_suites([suites]) == ["hm_suite_b", "hm_suite_a"]  # files in name order
    assert load_suites([suites / "test_hm_a.py"]) == []  # imported once, as pytest does
    assert get_entry("hm_suite_a").input_shape == (1, 28, 28)
    (user_modules / "test_hm_broken.py").write_text("import no_such_module_anywhere\n")
    with pytest.raises(InvalidInputError) as err:
        load_suites([user_modules / "test_hm_broken.py"])
    assert str(err.value) == (
        f"suite {user_modules / 'test_hm_broken.py'}: importing it raised "
        "ModuleNotFoundError: No module named 'no_such_module_anywhere'"
    )
    with pytest.raises(InvalidInputError, match=r"suite .*nothing\.py does not exist"):
        load_suites([user_modules / "nothing.py"])
    (user_modules / "notes.txt").write_text("models: hm_suite_a")
    with pytest.raises(InvalidInputError, match=r"notes\.txt is not a Python file"):
        load_suites([user_modules / "notes.txt"])


def fake_package(root, name: str, version: str, body: str) -> None:
    (root / name).mkdir()
    (root / name / "__init__.py").write_text(body)
    info = root / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_a_torchvision_built_for_another_torch_is_named(user_modules) -> None:
    import torch

    from harness.core.errors import MissingDependencyError

    fake_package(
        user_modules, "torchvision", "0.19.0", "raise RuntimeError('operator torchvision::nms "
        "does not exist')\n"
    )  # fmt: skip
    fake_package(user_modules, "timm", "1.0.9", "import torchvision\n")
    hint = install_hint("torchvision", torch.__version__)
    expected = (("torchvision:resnet50", "torchvision 0.19.0"), ("timm:resnet50", "timm 1.0.9"))
    for name, what in expected:
        with pytest.raises(MissingDependencyError) as err:
            get_entry(name)
        assert str(err.value) == (
            f"model {name!r} needs {what}, which fails to import (RuntimeError: operator "
            f"torchvision::nms does not exist): torch {torch.__version__} and torchvision "
            f"0.19.0 do not match; install the torchvision built for this torch: {hint}"
        )


def test_a_missing_torchvision_says_how_to_install_it() -> None:
    import torch

    from harness.core.errors import MissingDependencyError

    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed here")
    with pytest.raises(MissingDependencyError) as err:
        get_entry("torchvision:resnet50")
    assert str(err.value) == (
        "model 'torchvision:resnet50' needs the package 'torchvision', which is not installed: "
        f"{install_hint('torchvision', torch.__version__)}"
    )
    assert "pip install torchvision" not in str(err.value)  # never a bare, unpinned install


@pytest.mark.parametrize(
    ("torch_version", "package", "hint"),
    [  # torchvision's documented pairs: torch 2.5.1 / 0.20.1, 2.0.0 / 0.15.0, 1.13.1 / 0.14.1
        ("2.5.1+cu121", "torchvision", "pip install 'torchvision==0.20.1' --index-url "
         "https://download.pytorch.org/whl/cu121 (the release built for torch 2.5.1+cu121, "
         "which it keeps)"),
        ("2.0.0", "torchvision", "pip install 'torchvision==0.15.0' (the release built for "
         "torch 2.0.0, which it keeps)"),
        ("1.13.1+cpu", "timm", "pip install 'torchvision==0.14.1' --index-url "
         "https://download.pytorch.org/whl/cpu && pip install timm (the release built for "
         "torch 1.13.1+cpu, which it keeps)"),
    ],
)  # fmt: skip
def test_the_install_hint_keeps_the_installed_torch(torch_version, package, hint) -> None:
    """Issue 25: `pip install torchvision` pulled torch 2.14.1 and ~20 CUDA wheels in place of
    2.13.0+cpu."""
    assert install_hint(package, torch_version) == hint


def test_no_release_matches_a_nightly_and_the_hint_says_so() -> None:
    hint = install_hint("torchvision", "2.14.0.dev20261201+cpu")
    assert hint.startswith("no released torchvision matches torch 2.14.0.dev20261201+cpu")
    assert "build torchvision from source" in hint
