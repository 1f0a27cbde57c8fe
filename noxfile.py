"""Test environments: current JAX (numpy 2) for the core, numpy<2 + JAX 0.7.0 + MindSpore 2.10.

``python -m nox`` runs both; ``python -m nox -s core`` or ``-s mindspore`` runs one.
"""

import nox

nox.options.sessions = ["core", "mindspore"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"


@nox.session(python=PYTHON)
def core(session: nox.Session) -> None:
    """The whole suite except the MindSpore tests, on the newest JAX and numpy 2."""
    session.install(".[train,test]")
    session.run("python", "-m", "pytest", "-m", "not mindspore", *session.posargs)


@nox.session(python=PYTHON)
def mindspore(session: nox.Session) -> None:
    """compat_mindspore and the parity tests against mindarmour 2.0.0 (the oracle)."""
    session.install("-c", "constraints/mindspore.txt", ".[train,test,mindspore,oracle]")
    session.run("python", "-m", "pytest", "-m", "mindspore", *session.posargs)


@nox.session(python=PYTHON)
def train(session: nox.Session) -> None:
    """The main job: ``supjax train`` on the embedded digits data set."""
    session.install(".[train]")
    session.run("supjax", "train", *session.posargs)
