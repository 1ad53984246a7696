"""Guetteur: a streaming detector for authorised accounts that read data they should not."""

from setuptools import find_packages, setup

setup(
    name="guetteur",
    version="0.1.0",
    description="Apache Beam pipeline detecting bulk consultation and account-creation abuse by partner accounts",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["pipelines", "pipelines.*", "transforms", "transforms.*", "schemas", "schemas.*"]),
    # Ranges for library users; requirements.lock pins the exact set the project is tested with.
    install_requires=[
        "apache-beam==2.77.0",
        "datasketches>=5.1",
        "pyarrow>=17",
        "orjson>=3.10",
        "prometheus-client>=0.20",
    ],
    extras_require={"test": ["pytest>=8", "hypothesis>=6.100"]},
    entry_points={"console_scripts": ["guetteur=pipelines.cli:run"]},
)
