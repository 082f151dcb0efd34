"""The package list, which pyproject.toml cannot state: the code packages plus configs/ and assets/
mapped into the package as genprior.configs and genprior.assets, so that a non-editable install
(pip install ., a wheel) carries the configs and the shipped generators (genprior/shipped.py).
The top-level folders stay the places people edit; a checkout uses them directly."""
from setuptools import find_packages, setup

DATA = {"genprior.configs": "configs", "genprior.assets": "assets"}

setup(packages=find_packages(include=["genprior", "genprior.*", "generators", "generators.*"]) + list(DATA),
      package_dir=DATA,
      package_data={"genprior.configs": ["**/*.yaml"], "genprior.assets": ["generators/**/*"]})
