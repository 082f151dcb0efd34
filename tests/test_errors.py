"""Every command line ends the same ways: genprior.errors.exit_status."""
import pytest

from genprior.errors import ConfigError, DataNotFound, Diverged, Terminated, exit_status


def _raises(e):
    def work():
        raise e
    return work


@pytest.mark.parametrize("work,code,line", [
    (lambda: None, 0, ""),
    (lambda: 1, 1, ""),  # the work's own status (a sweep with a failed job)
    (_raises(ConfigError("ipc must be >= 1")), 2, "prog: error: ipc must be >= 1"),
    (_raises(DataNotFound("cifar10", ["/x"], "its files")), 2,  # the command's own keys
     "prog: error: cifar10 not found (looked in /x); pass data_root=DIR holding its files"),
    (_raises(Diverged("loss nan at step 3")), 1, "prog: diverged: loss nan at step 3"),
    (_raises(KeyboardInterrupt()), 130, "prog: stopped by SIGINT (exit 130); kept"),
    (_raises(Terminated()), 143, "prog: stopped by SIGTERM (exit 143); kept"),
])
def test_each_ending_is_its_status_and_at_most_one_line(work, code, line, capsys):
    assert exit_status("prog", work, "data_root=DIR", stopped="kept") == code
    err = capsys.readouterr().err
    assert err == (line + "\n" if line else "")


def test_other_failures_are_not_swallowed():
    with pytest.raises(ZeroDivisionError):
        exit_status("prog", lambda: 1 / 0, "data_root=DIR")
