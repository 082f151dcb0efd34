import subprocess
import sys


def test_zoo_never_imports_the_distillation_side():
    code = ("import sys, generators.io, generators.train, generators.foreign; "
            "bad = sorted(m for m in sys.modules if m.startswith(('genprior.run', 'genprior.objectives', "
            "'genprior.synsets', 'genprior.evaluate'))); print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
