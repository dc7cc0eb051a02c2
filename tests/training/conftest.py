"""Shared fixtures for the training-job tests: a small English corpus slice and a job runner."""

import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOOKS = os.path.join(REPO_ROOT, "..", "shared", "data", "english_books")


@pytest.fixture(scope="session")
def corpus_slice(tmp_path_factory):
    """The first 1500 lines of Alice in Wonderland (english_books), or skip when the data is absent."""
    source = os.path.join(BOOKS, "carroll-alice.txt")
    if not os.path.exists(source):
        pytest.skip(f"real data not found: {source} (see ../shared/data/README.md)")
    path = tmp_path_factory.mktemp("corpus") / "alice.txt"
    with open(source, encoding="utf-8") as f:
        lines = [next(f) for _ in range(1500)]
    path.write_text("".join(lines), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="session")
def book_documents(tmp_path_factory):
    """The first 250 lines of 8 books (english_books), one file each: 8 documents, or skip when absent.

    'Random next' segments then come from other books, so next-sentence prediction can be learned;
    in one book (the Alice slice) they come from the same text and NSP stays at its majority share.
    """
    books = ["carroll-alice", "austen-persuasion", "melville-moby_dick", "shakespeare-hamlet", "whitman-leaves",
             "chesterton-brown", "bryant-stories", "milton-paradise"]
    directory = tmp_path_factory.mktemp("books")
    paths = []
    for book in books:
        source = os.path.join(BOOKS, f"{book}.txt")
        if not os.path.exists(source):
            pytest.skip(f"real data not found: {source} (see ../shared/data/README.md)")
        with open(source, encoding="utf-8") as f:
            lines = [next(f) for _ in range(250)]
        paths.append(directory / f"{book}.txt")
        paths[-1].write_text("".join(lines), encoding="utf-8")
    return [str(p) for p in paths]


@pytest.fixture(scope="session")
def tiny_init(tmp_path_factory):
    """A tiny encoder saved with the real MiniLM (bert-base-uncased) vocabulary."""
    from tests.test_case import save_tiny_init

    return save_tiny_init(tmp_path_factory.mktemp("tiny_init"))


def job_command(module, *args):
    """`python -m MODULE ARGS` run from the repository root."""
    return [sys.executable, "-m", module, *map(str, args)]


def run_job(module, *args, check=True, timeout=600):
    """Runs a training job to completion; returns the CompletedProcess (output captured)."""
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)  # The jobs keep TensorFlow's start-up lines out themselves.
    result = subprocess.run(job_command(module, *args), cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{module} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result
