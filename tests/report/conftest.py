import pytest
from fake_runs import make_results


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A folder of fake run folders (see fake_runs.make_results) and the dict of their paths."""
    root = tmp_path_factory.mktemp("results")
    return root, make_results(root)
