import setuptools  # Dataflow workers install the package with --setup_file ./setup.py

setuptools.setup()
