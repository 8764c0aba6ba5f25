"""Command-line interface: a thin layer of argparse over the Python API."""
