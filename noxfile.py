"""Test environments: current JAX (numpy 2) for the core, the core again at the lowest
versions pyproject.toml accepts, and numpy<2 + JAX 0.7.0 + MindSpore 2.10.

``python -m nox`` runs all three; ``python -m nox -s core`` (or ``lowest``, ``mindspore``) runs one.
"""

import nox

nox.options.sessions = ["core", "lowest", "mindspore"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
# Hypothesis runs derandomised (the ``ci`` profile registered in conftest.py), so that a
# failure found by one run is found again by the next.
CI_ARGS = ("--hypothesis-profile", "ci")


@nox.session(python=PYTHON)
def core(session: nox.Session) -> None:
    """The whole suite except the MindSpore tests, on the newest JAX and numpy 2."""
    session.install(".[train,test]")
    session.run("python", "-m", "pytest", "-m", "not mindspore", *CI_ARGS, *session.posargs)


@nox.session(python=PYTHON)
def lowest(session: nox.Session) -> None:
    """The core suite at the lowest versions pyproject.toml accepts (constraints/lowest.txt)."""
    session.install("-c", "constraints/lowest.txt", ".[train,test]")
    session.run("python", "-m", "pytest", "-m", "not mindspore", *CI_ARGS, *session.posargs)


@nox.session(python=PYTHON)
def mindspore(session: nox.Session) -> None:
    """compat_mindspore and the parity tests against mindarmour 2.0.0 (the oracle)."""
    session.install("-c", "constraints/mindspore.txt", ".[train,test,mindspore,oracle]")
    session.run("python", "-m", "pytest", "-m", "mindspore", *CI_ARGS, *session.posargs)


@nox.session(python=PYTHON)
def train(session: nox.Session) -> None:
    """The main job: ``supjax train`` on the embedded digits data set."""
    session.install(".[train]")
    session.run("supjax", "train", *session.posargs)
