"""Tools for running and testing the project on a developer's or CI machine."""
