"""Datasets and converters for cross-domain sequential recommendation."""
